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

from genmodels.models.graph_continuous import GraphPFGMPPConfig
from genmodels.nets.graph import GDSS_NET_CONFIGS
from genmodels.train import OptimConfig, TrainConfig


def config() -> GraphPFGMPPConfig:
    return GraphPFGMPPConfig(
        dataset="community_small",
        net=GDSS_NET_CONFIGS["community_small"],
        time_input=True,
        D=128.0,
        sigma_min=0.002,
        sigma_max=80.0,
        rho=7.0,
        sigma_data=0.5,
        P_mean=-1.2,
        P_std=1.2,
        sampler="heun",
        sample_steps=18,
        sample_use_ema=True,
        sample_batch=128,
        train=TrainConfig(steps=3000, batch_size=80, ema_decay=0.999, log_every=50, ckpt_every=500),
        optim=OptimConfig(
            lr=5e-3,
            weight_decay=1e-4,
            warmup_steps=50,
            schedule="cosine",
            final_lr_frac=0.1,
            clip_norm=1.0,
            clip_per_module=True,
        ),
    )
