"""PFGM++ (Xu et al., ICML 2023) on any continuous task; ``D = inf`` is EDM (Karras et al.
2022).

The kernel, its EDM alignment ``r = sigma sqrt(D)``, the training noise ``ln sigma ~
N(P_mean, P_std^2)``, EDM's preconditioning ``D_theta(x; sigma) = c_skip x + c_out F(c_in
x, c_noise)`` and the weighted loss are :class:`~genmodels.processes.pfgmpp.PFGMPP`'s
(per leaf, over its real entries; the paper's CIFAR-10 runs use D = 64, 128, 2048).

Sampling (registry kind ``pfgmpp``; ``genmodels samplers RECIPE``) solves
``dx/dsigma = (x - D_theta(x; sigma)) / sigma`` (the PFGM++ ODE under the alignment) from
the PFGM++ prior at ``sigma_max``: ``heun`` is EDM's Algorithm 1 without churn on its rho
grid (eq. 5; ``2 K - 1`` NFE, 18 levels -> 35), ``euler`` the same grid with Euler steps,
``ode`` diffrax from ``sigma_max`` to ``sigma_min``. ``pc`` and ``s4`` (D = inf only) are
the shared score-SDE samplers on the variance-exploding SDE whose marginals are EDM's
kernel (:func:`~genmodels.processes.pfgmpp.edm_ve_sde`, score ``(D_theta - x) /
sigma^2``); a finite D has no such SDE (PFGM++ is an ODE method), so they refuse it.
A class-conditional image recipe guides ``D_theta`` (:mod:`genmodels.samplers.guidance`).

The config type picks the task and the network: :class:`PFGMPPImageConfig` (images, the
EDM / DDPM++ UNet) and :class:`GraphPFGMPPConfig` (GDSS's graph state, molecules or
generic graphs by data set, GDSS's two networks; :mod:`genmodels.models.graph_continuous`).
"""

from __future__ import annotations

from dataclasses import dataclass

from flax import nnx

from genmodels.core.types import Array, Context, State
from genmodels.models.continuous import ContinuousMethod
from genmodels.models.graph_continuous import GraphTaskConfig
from genmodels.models.tasks.images import ImageTaskConfig
from genmodels.nets.graph import GDSSNetConfig, GraphFieldNet
from genmodels.nets.unet import UNetConfig
from genmodels.processes.pfgmpp import PFGMPP
from genmodels.samplers.guidance import one_hot_condition

__all__ = [
    "GraphPFGMPPConfig",
    "GraphPFGMPPNet",
    "PFGMPPImageConfig",
    "PFGMPPImageNet",
    "PFGMPPMethod",
    "PFGMPPSettings",
]


@dataclass(frozen=True)
class PFGMPPSettings:
    """The PFGM++ / EDM fields of a recipe.

    Attributes:
      D: augmented dimensions (``inf``: EDM).
      sigma_min, sigma_max, rho: EDM's sampling grid (0.002, 80, 7).
      sigma_data: data scale of the preconditioning (EDM: 0.5).
      P_mean, P_std: training ``ln sigma ~ N(P_mean, P_std^2)`` (EDM: -1.2, 1.2).
    """

    D: float = 128.0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    sigma_data: float = 0.5
    P_mean: float = -1.2
    P_std: float = 1.2

    def process(self) -> PFGMPP:
        """The :class:`~genmodels.processes.pfgmpp.PFGMPP` of these settings."""
        return PFGMPP.from_settings(self)

    def build(self) -> PFGMPPMethod:
        return PFGMPPMethod(self)


@dataclass(frozen=True)
class PFGMPPImageConfig(ImageTaskConfig, PFGMPPSettings):
    """PFGM++ (or EDM) on images: :class:`ImageTaskConfig` and :class:`PFGMPPSettings`
    fields plus the ones below.

    Attributes:
      sampler: default sampler (``heun``; with D = inf also ``pc`` or ``s4``).
      sample_steps: noise levels of the grid (EDM CIFAR-10: 18, 35 NFE with ``heun``);
        for ``pc`` / ``s4`` the SDE time steps.
      snr, scale_eps: Langevin corrector of ``pc`` / ``s4`` (score_sde's VE setting 0.16;
        1 = plain Langevin noise).
    """

    sampler: str = "heun"
    sample_steps: int = 18
    snr: float = 0.16
    scale_eps: float = 1.0

    def make_net(self, process: PFGMPP, rngs: nnx.Rngs) -> PFGMPPImageNet:
        return PFGMPPImageNet(self.net, process, rngs=rngs)


@dataclass(frozen=True)
class GraphPFGMPPConfig(GraphTaskConfig, PFGMPPSettings):
    """PFGM++ (or EDM) on GDSS's graph state: :class:`GraphTaskConfig` and
    :class:`PFGMPPSettings` fields (``sigma_data``: QM9's one-hot ``x`` has RMS 0.5 over
    real entries, its bond orders 0.66 over real pairs)."""

    sampler: str = "heun"
    sample_steps: int = 18

    def make_net(self, process: PFGMPP, rngs: nnx.Rngs) -> GraphPFGMPPNet:
        return GraphPFGMPPNet(self.graph_net, process, self.time_input, rngs=rngs)


class PFGMPPImageNet(nnx.Module):
    """``(state, sigma, ctx) -> {"image": D_theta(x; sigma)}``: the UNet under EDM's
    preconditioning, fed ``c_noise`` as its noise label.

    Args:
      net: UNet sizes.
      process: the PFGM++ process (its preconditioning).
      rngs: parameter RNGs.
    """

    def __init__(self, net: UNetConfig, process: PFGMPP, *, rngs: nnx.Rngs):
        self.unet = net.make(rngs)
        self.process = process

    def __call__(
        self, state: State, sigma: Array, ctx: Context | None = None, *, train=False, rngs=None
    ) -> State:
        y = one_hot_condition(ctx, self.unet.config.label_dim)  # [B, classes] or None

        def raw(scaled: State, c_noise: Array) -> State:
            return {"image": self.unet(scaled["image"], c_noise, y, train=train, rngs=rngs)}

        return self.process.denoise_state(raw, state, sigma)


class GraphPFGMPPNet(GraphFieldNet):
    """``(state, sigma, ctx) -> D_theta(state; sigma)``: GDSS's networks under EDM's
    preconditioning per leaf, both reading both scaled leaves and ``c_noise``.

    Args:
      net: GDSS network sizes.
      process: the PFGM++ process (its preconditioning).
      time_input: feed ``c_noise`` as a node channel.
      rngs: parameter RNGs.
    """

    def __init__(
        self, net: GDSSNetConfig, process: PFGMPP, time_input: bool = True, *, rngs: nnx.Rngs
    ):
        super().__init__(net, time_input, rngs=rngs)
        self.process = process

    def __call__(self, state: State, sigma: Array, ctx: Context, *, train=False, rngs=None):
        def raw(scaled: State, c_noise: Array) -> State:
            return GraphFieldNet.__call__(self, scaled, c_noise, ctx)

        return self.process.denoise_state(raw, state, sigma)


class PFGMPPMethod(ContinuousMethod):
    """PFGM++ / EDM on the task of its config (module docstring; the composition is
    :class:`~genmodels.models.continuous.ContinuousMethod`'s)."""

    def __init__(self, config: PFGMPPImageConfig | GraphPFGMPPConfig):
        if not config.D > 0:
            raise ValueError(f"D must be positive (or inf for EDM), got {config.D}")
        super().__init__(config, config.process())
