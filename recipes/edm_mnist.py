"""EDM (PFGM++ with D = inf) on MNIST sampled by predictor-corrector / S4 (CPU-sized).

The training setup is ``pfgmpp_mnist``'s with ``D = inf``: EDM (Karras et al. 2022) with
its preconditioning (sigma_data 0.5), ``ln sigma ~ N(-1.2, 1.2^2)`` and loss weighting,
pixels in [-1, 1], the same 0.32M-parameter UNet, batch 64, 600 steps (training time in
``benchmarks/results/recipes.md``).

This recipe is the score-SDE row of the method x domain matrix: samples come by default
from the shared predictor-corrector sampler (:mod:`genmodels.samplers.pc`, the one GDSS
uses on graphs) applied to the denoiser through the score ``s(x, sigma) = (D(x; sigma) -
x) / sigma^2`` (:func:`genmodels.models.pfgmpp.edm_sde_sample`):

- ``--sampler pc`` (default): reverse-diffusion predictor + one Langevin corrector step
  (snr 0.16, score_sde's VE setting; ``scale_eps`` 1), ``2 K`` network calls;
- ``--sampler s4``: GDSS's S4 solver, ``K`` network calls;
- ``--sampler heun`` / ``euler``: EDM's ODE samplers (use ``--steps 18`` for heun, 35 NFE).

Time grid: the variance-exploding SDE ``sigma(t) = sigma_min (sigma_max /
sigma_min)^t`` on ``t = linspace(1, 1e-3, K)`` (noise levels geometric from sigma_max 80
to sigma_min 0.002), not EDM's rho = 7 grid: the shared samplers step uniformly in time
and the reverse-diffusion predictor uses the SMLD table of K geometric levels.
``K = sample_steps = 50`` by default (100 NFE for pc). The explicit score step of S4
(and of Euler-Maruyama) on this SDE multiplies the denoising direction by
``2 ln(sigma_max / sigma_min) / K``, which overshoots (and diverges) for
``K < ln(sigma_max / sigma_min) ~ 10.6``: use at least ~20 steps with s4 (pc's
reverse-diffusion step is stable at any K). sample_batch is 256 so that the batch splits
over 8 devices.
"""

from _continuous import EDM, mnist_cpu

from genmodels.models.pfgmpp import PFGMPPImageConfig


def config() -> PFGMPPImageConfig:
    return mnist_cpu(
        PFGMPPImageConfig,
        D=float("inf"),
        **EDM,
        sampler="pc",
        sample_steps=50,
        snr=0.16,
        scale_eps=1.0,
        sample_batch=256,
        steps=600,
        ckpt_every=200,
    )
