"""PFGM++ (D=128; --D inf is EDM) on QM9 molecule graphs with GDSS's networks (CPU-sized).

Method: :mod:`genmodels.models.graph_continuous`. The state, data, decoding and metrics
are GDSS's on QM9 (``gdss_qm9``): one-hot atom types ``x`` [B, 9, 4] and Kekule bond
orders ``adj`` [B, 9, 9], atom counts drawn from the training set, samples decoded with
or without GDSS's valency correction. Each leaf gets the PFGM++ kernel with D = 128 at
one noise level ``sigma`` per molecule (``r = sigma sqrt(D)``; the kernel's N is the
leaf's number of free real entries: ``n * 4`` for ``x``, ``n (n - 1) / 2`` for ``adj``),
symmetric zero-diagonal noise on ``adj`` and none on padded atoms. EDM's settings carry
over through the alignment (Xu et al. 2023, Sec. 4): ``ln sigma ~ N(-1.2, 1.2^2)``,
preconditioning with sigma_data 0.5, loss weight ``(sigma^2 + 0.25) / (0.5 sigma)^2``,
Heun sampling on 18 noise levels in [0.002, 80] with rho 7 (35 NFE) from the PFGM++
prior at sigma_max. ``--D 2048`` or ``--D inf`` (EDM) switch the kernel.

Networks: GDSS's QM9 sizes (``config/qm9.yaml``: ScoreNetworkX depth 2, nhid 16;
ScoreNetworkA 3 GMH layers, 3-layer channel MLPs, adim 16, channels 2/8/4), wrapped in
EDM's preconditioning per leaf.

Departures: GDSS's networks take no noise level; here ``c_noise = ln(sigma) / 4`` is
appended to the node features as a fifth input channel (``time_input``). The loss is the
mean over each leaf's real entries (EDM sums over pixels; GDSS sums its score loss), the
two leaves' losses are summed. sigma_data stays at EDM's 0.5 for both leaves (the RMS of
QM9's one-hot ``x`` over real entries is 0.5, of its bond orders over real pairs 0.66).
Optimiser for a CPU budget: 1,000 steps of batch 512 (4.2 epochs of the 120,803 training
molecules; GDSS: 300 epochs at batch 1024), Adam lr 5e-3 and L2 weight decay 1e-4
(GDSS's) with 50 warm-up steps and a cosine decay to 5e-4 (GDSS: exponential decay 0.999
per epoch), clipping at 1 per network (GDSS), EMA 0.999, sampling with the EMA
parameters (GDSS samples QM9 with the raw ones). Training and sampling times:
``benchmarks/results/recipes.md``.
"""

from _continuous import EDM, EDM_HEUN, graphs_cpu

from genmodels.models.graph_continuous import GraphPFGMPPConfig


def config() -> GraphPFGMPPConfig:
    return graphs_cpu(
        GraphPFGMPPConfig,
        dataset="qm9",
        net="QM9",
        D=128.0,
        **EDM,
        **EDM_HEUN,
        sample_batch=1024,
        steps=1000,
        batch_size=512,
    )
