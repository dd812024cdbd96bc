"""Masked diffusion + first-hitting sampler on QM9 (MDLM loss, graph transformer; CPU-sized).

References: the loss and sampler follow MDLM (Sahoo et al. 2024; kuleshov-group/mdlm
``configs/config.yaml``: AdamW lr 3e-4, no weight decay, 2500 constant warm-up steps,
batch 512, EMA 0.9999, clip 1, times in [1e-3, 1], antithetic, no time conditioning) and
Zheng et al. 2024 (first-hitting sampler, float64 categorical draws); the network is a
DiGress-style graph transformer (cvignac/DiGress ``configs/experiment/qm9_no_h.yaml``:
9 layers, d_x 256, d_e 64, 8 heads, batch 1024, 1000 epochs, AdamW lr 2e-4).

Departures, for a CPU budget (training time in ``benchmarks/results/recipes.md``): a
4-layer transformer with d_x 64, d_e 32, 4 heads (0.19M parameters), 2000 steps at batch
512 (8.5 epochs of the 120,803 training molecules), lr 1e-3 with 200 warm-up steps and a
cosine decay to 1e-4, EMA 0.999 (0.9999 averages over too many of 2000 steps). Unchanged
from MDLM: the linear schedule ``alpha = 1 - t`` (MDLM's log-linear noise), times in
[1e-3, 1], no time conditioning, antithetic times, the NELBO weighting, clipping at 1.
Sampling defaults to the first-hitting sampler with float64-grade categorical draws.
"""

from _mdm import mdm

from genmodels.models.mdm import MDMMolConfig
from genmodels.nets.graph_transformer import GraphTransformerConfig


def config() -> MDMMolConfig:
    return mdm(
        MDMMolConfig,
        dataset="qm9",
        net=GraphTransformerConfig(dx=64, de=32, heads=4, layers=4, ffn_x=128, ffn_e=64),
        sample_batch=1024,
        steps=2000,
        batch_size=512,
        warmup_steps=200,
    )
