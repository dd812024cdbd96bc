"""Flow matching (linear interpolant; Euler, Heun or BOSS sampling) on QM9 molecule graphs.

Method: :mod:`genmodels.models.graph_continuous`. The state, data, decoding and metrics
are GDSS's on QM9 (``gdss_qm9``): one-hot atom types ``x`` [B, 9, 4] and Kekule bond
orders ``adj`` [B, 9, 9], atom counts drawn from the training set, samples decoded with
or without GDSS's valency correction. Each leaf follows the straight path
``x_t = (1 - t) x_0 + t eps`` (``t = 0`` data, ``t = 1`` noise) at one time per
molecule, with symmetric zero-diagonal noise on ``adj`` and none on padded atoms; the
networks regress ``eps - x_0`` (flow-matching MSE, ``t ~ U(1e-3, 1)``, as rectified
flow), and samples integrate ``dx/dt = v`` from ``t = 1`` to 0 by Euler on 50 uniform
steps (``--sampler heun``: diffrax Heun, ``--sampler boss --steps K``: Euler on the
Bellman-optimal grid of ``boss_grids.json`` in the checkpoint folder, made by
``genmodels boss-grids flow_qm9 --checkpoint DIR`` for K = 2..10 with
BOSS's defaults: 100 prior draws, Kmax = 100).

Networks: GDSS's QM9 sizes (``config/qm9.yaml``: ScoreNetworkX depth 2, nhid 16;
ScoreNetworkA 3 GMH layers, 3-layer channel MLPs, adim 16, channels 2/8/4), whose
outputs are read as the two leaves' velocities.

Departures: GDSS's networks take no time; here ``t`` is appended to the node features as
a fifth input channel (``time_input``). The loss is the mean over each leaf's real
entries, the two leaves' losses summed. No minibatch-OT coupling. Optimiser for a CPU
budget: 1,000 steps of batch 512 (4.2 epochs of the 120,803 training molecules; GDSS: 300
epochs at batch 1024), Adam lr 5e-3 and L2 weight decay 1e-4 (GDSS's) with 50 warm-up
steps and a cosine decay to 5e-4 (GDSS: exponential decay 0.999 per epoch), clipping at 1
per network (GDSS), EMA 0.999, sampling with the EMA parameters (GDSS samples QM9 with
the raw ones). 50 Euler steps by default (50 NFE). Training, sampling and BOSS-grid times:
``benchmarks/results/recipes.md``.
"""

from _continuous import graphs_cpu

from genmodels.models.graph_continuous import GraphFlowConfig


def config() -> GraphFlowConfig:
    return graphs_cpu(
        GraphFlowConfig,
        dataset="qm9",
        net="QM9",
        t_eps=1e-3,
        sampler="euler",
        sample_steps=50,
        sample_batch=1024,
        steps=1000,
        batch_size=512,
    )
