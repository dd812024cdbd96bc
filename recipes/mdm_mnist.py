"""Masked diffusion + first-hitting sampler on MNIST quantized to 4 levels (CPU-sized).

Pixels are binned into 4 equal-width intensity levels (``floor(x * 4 / 256)``), one token
per pixel; the loss is MDLM's NELBO (kuleshov-group/mdlm: linear/log-linear schedule, no
time conditioning, antithetic times in [1e-3, 1], clip 1), sampling defaults to the
first-hitting sampler of Zheng et al. 2024 (784 network calls per batch) with
float64-grade categorical draws.

Departures, for a CPU budget: MDLM and MD4 use large transformers / U-Nets on 8-bit
pixels (MD4 models 256 levels of CIFAR-10 and ImageNet); here a 4-block dilated residual
conv net of width 32 (0.07M parameters) on 4 levels, batch 64, lr 1e-3 with 200 warm-up
steps and a cosine decay to 1e-4, EMA 0.999, 3000 steps (3.2 epochs). FHS needs 784
network calls per batch; ``--sampler ancestral --steps 100`` needs 100 (training and
sampling times in ``benchmarks/results/recipes.md``). Evaluation reports simple
statistics (level histogram TV, mean-image RMSE, ink fraction), not FID.
"""

from _mdm import mdm

from genmodels.models.mdm import MDMImageConfig
from genmodels.nets.conv import TokenConvConfig


def config() -> MDMImageConfig:
    return mdm(
        MDMImageConfig,
        dataset="mnist",
        levels=4,
        net=TokenConvConfig(channels=32, blocks=4, dilations=(1, 2, 4, 8)),
        sample_batch=64,
        steps=3000,
        batch_size=64,
        warmup_steps=200,
    )
