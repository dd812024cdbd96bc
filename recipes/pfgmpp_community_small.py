"""PFGM++ (D=128; --D inf is EDM) on community_small with GDSS's networks (CPU-sized).

Method: :mod:`genmodels.models.graph_continuous` (:class:`GenericGraphPFGMPP`). The
state, data, decoding and metrics are GDSS's on community_small (``gdss_community_small``):
degree one-hot ``x`` [B, 20, 10] and 0/1 adjacency ``adj`` [B, 20, 20], node counts drawn
from the 80 training graphs, samples decoded by thresholding ``adj`` at 0.5 and dropping
isolated nodes, scored by the MMD suite (degree, clustering, orbit, spectral) against the
20 test graphs. Each leaf gets the PFGM++ kernel with D = 128 at one noise level per
graph (``r = sigma sqrt(D)``; N is the leaf's number of free real entries: ``n * 10`` for
``x``, ``n (n - 1) / 2`` for ``adj``), symmetric zero-diagonal noise on ``adj``, none on
padded nodes. EDM's settings carry over through the alignment (Xu et al. 2023, Sec. 4):
``ln sigma ~ N(-1.2, 1.2^2)``, preconditioning with sigma_data 0.5, loss weight
``(sigma^2 + 0.25) / (0.5 sigma)^2``, Heun sampling on 18 noise levels in [0.002, 80]
with rho 7 (35 NFE) from the PFGM++ prior at sigma_max.

Networks: GDSS's community_small sizes (``config/community_small.yaml``: ScoreNetworkX
GCN depth 3, nhid 32; ScoreNetworkA 5 GMH layers, 2-layer channel MLPs, adim 32,
channels 2/8/4), wrapped in EDM's preconditioning per leaf; ``c_noise = ln(sigma) / 4``
is appended to the node features as an 11th input channel (GDSS's networks take no
noise level).

Optimiser for a CPU budget: 3,000 steps of batch 80 (all training graphs per step;
GDSS: 5,000 epochs), Adam lr 5e-3 and L2 weight decay 1e-4 with 50 warm-up steps and a
cosine decay to 5e-4 (GDSS: lr 1e-2, exponential decay 0.999 per epoch), clipping at 1
per network (GDSS), EMA 0.999, sampling with the EMA parameters (GDSS samples generic
graphs with the raw ones).
"""

from _continuous import EDM, EDM_HEUN, graphs_cpu

from genmodels.models.graph_continuous import GraphPFGMPPConfig


def config() -> GraphPFGMPPConfig:
    return graphs_cpu(
        GraphPFGMPPConfig,
        dataset="community_small",
        net="community_small",
        D=128.0,
        **EDM,
        **EDM_HEUN,
        sample_batch=128,
        steps=3000,
        batch_size=80,
    )
