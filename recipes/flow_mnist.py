"""Rectified flow (flow matching) on MNIST with a small DDPM++ UNet (CPU-sized, ~25 min).

Setup of the rectified-flow code (gnobitab/RectifiedFlow, CIFAR-10 DDPM++ config; see
``flow_cifar10`` for the paper sizes): the straight path ``x_t = (1 - t) x_0 + t eps``,
the flow-matching MSE averaged over pixels, ``t ~ U(1e-3, 1)``, the UNet called at noise
label ``999 t``, pixels in [-1, 1]; samples by Euler on a uniform grid (also ``heun``, and
``boss`` with a ``boss_grids.json`` next to the checkpoint).

Departures, for a CPU budget: a 0.32M-parameter UNet
(model_channels 16, channel_mult (1, 2, 2): levels 28 / 14 / 7 with 16 / 32 / 32
channels, one residual block per level, attention at 7 x 7 only, no dropout) instead of
the 62M DDPM++; batch 64; lr 1e-3 with 100 warm-up steps and a cosine decay to 1e-4
(instead of a constant 2e-4); EMA 0.995 instead of 0.999999 (the run is only 900 steps);
no random flips (digits are not mirror-symmetric); 20 Euler steps by default (20 NFE;
the BOSS grids of ``boss_mnist`` do better with fewer, see ``benchmarks/boss.py``).
Training and sampling times: ``benchmarks/results/recipes.md``.
"""

from _continuous import RECTIFIED_FLOW, mnist_cpu

from genmodels.models.flow import FlowImageConfig


def config() -> FlowImageConfig:
    return mnist_cpu(
        FlowImageConfig,
        random_flip=False,
        **RECTIFIED_FLOW,
        sampler="euler",
        sample_steps=20,
        sample_batch=250,
        steps=900,
        ckpt_every=300,
    )
