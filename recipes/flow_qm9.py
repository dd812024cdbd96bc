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
``python -m genmodels.models.boss grids flow_qm9 --checkpoint DIR`` for K = 2..10 with
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
the raw ones). 50 Euler steps by default (50 NFE).

Measured speed (``genmodels train flow_qm9``, batch 512, 1 CPU device): 1.5 steps per
second on 2 cores shared with other jobs (load average ~8), after about 70 s of start-up
(loading QM9, compiling); the 1,000 steps take about 12-13 minutes on such cores, less on
idle ones. Sampling 256 molecules (50 Euler steps) from the command line took 43 s,
start-up included; the BOSS grids (100 draws, Kmax = 100, K = 2..10) about 1 minute.
"""

from genmodels.models.graph_continuous import GraphFlowConfig
from genmodels.nets.graph import GDSS_NET_CONFIGS
from genmodels.train import OptimConfig, TrainConfig


def config() -> GraphFlowConfig:
    return GraphFlowConfig(
        dataset="qm9",
        net=GDSS_NET_CONFIGS["QM9"],
        time_input=True,
        t_eps=1e-3,
        sampler="euler",
        sample_steps=50,
        sample_use_ema=True,
        sample_batch=1024,
        train=TrainConfig(
            steps=1000, batch_size=512, ema_decay=0.999, log_every=50, ckpt_every=500
        ),
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
