"""Class-conditional EDM (PFGM++ with D = inf) on MNIST with classifier-free guidance.

``pfgmpp_mnist``'s training setup at ``D = inf`` (EDM's preconditioning, ``ln sigma ~
N(-1.2, 1.2^2)``, the 0.32M-parameter UNet, batch 64) with the digit as a condition (the
UNet's label embedding; the label dropped to the null label with probability 0.1 in
training, Ho & Salimans 2022). Sampling by EDM's Heun sampler on 18 noise levels (35 NFE)
with the guided denoiser ``D_u + w (D_c - D_u)``: ``genmodels sample edm_mnist_cond --label
3 --guidance 2.0``; every other sampler of the recipe (``genmodels samplers
edm_mnist_cond``: pc, s4, ode, euler) takes the same options.
"""

from _continuous import EDM, EDM_HEUN, mnist_cpu

from genmodels.models.pfgmpp import PFGMPPImageConfig


def config() -> PFGMPPImageConfig:
    return mnist_cpu(
        PFGMPPImageConfig,
        classes=10,
        p_uncond=0.1,
        D=float("inf"),
        **EDM,
        **EDM_HEUN,
        sample_batch=250,
        steps=1200,
        ckpt_every=300,
    )
