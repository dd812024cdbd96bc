"""Flow matching (Euler, Heun or BOSS sampling) on community_small with GDSS's networks.

Method: :mod:`genmodels.models.graph_continuous` (:class:`GenericGraphFlow`). The state,
data, decoding and metrics are GDSS's on community_small (``gdss_community_small``):
degree one-hot ``x`` [B, 20, 10] and 0/1 adjacency ``adj`` [B, 20, 20], node counts drawn
from the 80 training graphs, samples decoded by thresholding ``adj`` at 0.5 and dropping
isolated nodes, scored by the MMD suite against the 20 test graphs. Each leaf follows the
straight path ``x_t = (1 - t) x_0 + t eps`` (``t = 0`` data, ``t = 1`` noise) at one
time per graph, with symmetric zero-diagonal noise on ``adj`` and none on padded nodes;
the networks regress ``eps - x_0`` (``t ~ U(1e-3, 1)``, as rectified flow), and samples
integrate ``dx/dt = v`` from ``t = 1`` to 0 by Euler on 50 uniform steps (``--sampler
heun``: diffrax Heun; ``--sampler boss --steps K``: Euler on the Bellman-optimal grid of
``boss_grids.json`` in the checkpoint folder, made by ``python -m genmodels.models.boss
grids flow_community_small --checkpoint DIR``).

Networks: GDSS's community_small sizes (``config/community_small.yaml``), their outputs
read as the two leaves' velocities; ``t`` is appended to the node features as an 11th
input channel (GDSS's networks take no time).

Optimiser for a CPU budget: 3,000 steps of batch 80 (all training graphs per step; GDSS:
5,000 epochs), Adam lr 5e-3 and L2 weight decay 1e-4 with 50 warm-up steps and a cosine
decay to 5e-4, clipping at 1 per network (GDSS), EMA 0.999, sampling with the EMA
parameters.
"""

from _continuous import graphs_cpu

from genmodels.models.graph_continuous import GraphFlowConfig


def config() -> GraphFlowConfig:
    return graphs_cpu(
        GraphFlowConfig,
        dataset="community_small",
        net="community_small",
        t_eps=1e-3,
        sampler="euler",
        sample_steps=50,
        sample_batch=128,
        steps=3000,
        batch_size=80,
    )
