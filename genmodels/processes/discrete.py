"""Discrete-time categorical diffusion with a stationary noise distribution (D3PM / USD3).

The forward kernel of one categorical variable with ``K`` classes after step ``t`` of ``T``
mixes the clean class with a fixed noise distribution ``m`` (uniform by default; Austin et
al. 2021, "D3PM", uniform transitions; Zhao et al. 2024, "USD3", whose notation PARD's
``pard/diffusion.py`` follows):

    q(x_t | x_0) = abar_t * onehot(x_0) + (1 - abar_t) * m,                (1)

with the cosine schedule (Nichol & Dhariwal 2021; PARD's ``noise_schedule``)

    abar_t = cos(pi/2 (t/T + a) / (1 + a)) / cos(pi/2 a / (1 + a)),   a = 0.008,

clipped to ``[1e-10, 1 - 1e-10]``. One step ``s = t - 1 -> t`` keeps the class with
probability ``abar_{t|s} = abar_t / abar_s`` and otherwise redraws it from ``m``. The
posterior of a step given the clean class (Bayes' rule on (1)) is

    q(x_s = k | x_t, x_0) ∝ [abar_{t|s} 1{k = x_t} + (1 - abar_{t|s}) m_{x_t}]
                            * [abar_s 1{k = x_0} + (1 - abar_s) m_k],          (2)

and the reverse model plugs the network's clean-class distribution into it (the
x0-parameterization): ``p(x_s | x_t) = sum_{x_0} q(x_s | x_t, x_0) p_theta(x_0 | x_t)``;
at ``s = 0`` the sample is drawn from ``p_theta(x_0 | x_1)`` directly.

Training loss per variable (PARD's ``compute_loss`` with ``ce_coeff``): at a step ``t``
drawn uniformly from ``{1, ..., T}``,

    L_vlb = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))      (t > 1)
          = -log p_theta(x_0 | x_1)                            (t = 1)
          + KL(q(x_T | x_0) || m) / T                          (prior term, spread over t)
    L     = L_vlb + ce_coeff * (-log p_theta(x_0 | x_t)),                       (3)

summed over the variables being generated. Times are integer steps stored as floats.

Virtual class (PARD, LingxiaoShawn/Pard ``pard/parallel/transform.py::ToOneHot`` and
``pard/parallel/task.py``): with ``virtual``, the last of the ``K`` classes never occurs in
the data but is part of the noise ``m`` (uniform over all ``K`` classes), so ``x_t`` can
hold it for ``t >= 1``; the final draw removes it by setting its logit to ``-inf``:

    p_theta(x_0 | x_1) = softmax(l_1, ..., l_{K-1}, -inf),                             (4)

(:meth:`DiscreteDiffusion.clean_probs`; the reference's ``from_logits_to_prob`` with
``no_virtual`` at the last step), so no sample ends in the virtual class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from genmodels.core.types import Array, Aux, Mask

__all__ = ["DiscreteDiffusion"]

_EPS = 1e-30
_CLIP = 1e-10


def _expand(v: Array, like: Array) -> Array:
    """Broadcast a per-example [B] value against ``like`` [B, ...]."""
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


@dataclass(frozen=True)
class DiscreteDiffusion:
    """Categorical diffusion over ``num_classes`` classes in ``steps`` discrete steps.

    Attributes:
      num_classes: K.
      steps: T (PARD: 50 per block).
      schedule: ``cosine`` (PARD's default) or ``linear`` (``abar_t = 1 - t/T``).
      cosine_offset: ``a`` of the cosine schedule.
      noise: the stationary distribution ``m`` as a tuple of K probabilities (``None``:
        uniform, PARD's ``uniform_noise: True``).
      ce_coeff: weight of the cross-entropy term in (3) (PARD: 0.1).
      virtual: the last class is the virtual class of (4): noise only, never drawn last.
    """

    num_classes: int
    steps: int = 50
    schedule: str = "cosine"
    cosine_offset: float = 0.008
    noise: tuple[float, ...] | None = None
    ce_coeff: float = 0.1
    virtual: bool = False
    #: process kind for the sampler registry
    kind: ClassVar[str] = "discrete"

    def __post_init__(self):
        if self.schedule not in ("cosine", "linear"):
            raise ValueError(f"unknown schedule {self.schedule!r}; choose cosine or linear")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.noise is not None and len(self.noise) != self.num_classes:
            raise ValueError(
                f"noise has {len(self.noise)} probabilities for {self.num_classes} classes"
            )

    # ------------------------------------------------------------- schedule
    @property
    def m(self) -> Array:
        """The noise distribution [K]."""
        if self.noise is None:
            return jnp.full((self.num_classes,), 1.0 / self.num_classes)
        m = jnp.asarray(self.noise, jnp.float32)
        return m / jnp.sum(m)

    def abar(self, t: Array) -> Array:
        """``abar_t`` at integer steps ``t`` (any shape; ``t = 0`` gives 1 before clipping)."""
        u = jnp.asarray(t, jnp.float32) / self.steps
        if self.schedule == "cosine":
            a = self.cosine_offset
            h = lambda v: jnp.cos((v + a) / (1 + a) * math.pi / 2)
            ab = h(u) / h(0.0)
        else:
            ab = 1.0 - u
        return jnp.clip(ab, _CLIP, 1.0 - _CLIP)

    # -------------------------------------------------------------- forward
    def prior(self, key: Array, shape: tuple[int, ...], mask: Array | None = None) -> Array:
        """Draws from ``m`` (int32 of ``shape``; 0 where ``mask`` is 0)."""
        x = jax.random.categorical(key, jnp.log(self.m), shape=shape).astype(jnp.int32)
        return x if mask is None else jnp.where(mask > 0, x, 0)

    def corrupt(self, key: Array, x0: Array, t: Array, mask: Mask = None) -> tuple[Array, Aux]:
        """``x_t ~ q(x_t | x_0)`` of (1) at per-example steps ``t`` [B].

        Args:
          key: PRNG key.
          x0: [B, ...] int classes.
          t: [B] steps in ``1..T``.
          mask: where to corrupt (elsewhere ``x_t = x_0``).

        Returns:
          ``(xt, {})``.
        """
        kb, km = jax.random.split(key)
        keep = jax.random.uniform(kb, x0.shape) < _expand(self.abar(t), x0)
        noise = self.prior(km, x0.shape)
        xt = jnp.where(keep, x0, noise)
        if mask is not None:
            xt = jnp.where(mask > 0, xt, x0)
        return xt.astype(jnp.int32), {}

    def q_t0(self, x0: Array, t: Array) -> Array:
        """``q(x_t | x_0)`` [..., K] of (1); ``t`` broadcasts against ``x0``."""
        ab = jnp.asarray(self.abar(t))[..., None]
        return ab * jax.nn.one_hot(x0, self.num_classes) + (1.0 - ab) * self.m

    def clean_probs(self, logits: Array, t: Array) -> Array:
        """The network's ``p_theta(x_0 | x_t)`` [..., K]: the softmax of ``logits``, with the
        virtual class's logit set to ``-inf`` at ``t = 1`` (the final draw, (4)).

        Args:
          logits: [..., K] network logits.
          t: steps broadcastable against ``logits[..., 0]``.
        """
        logits = logits.astype(jnp.float32)
        if self.virtual:
            last = jnp.arange(self.num_classes) == self.num_classes - 1  # [K]
            final = (jnp.asarray(t) <= 1)[..., None] & last
            logits = jnp.where(final, -jnp.inf, logits)
        return jax.nn.softmax(logits, axis=-1)

    def posterior_matrix(self, xt: Array, t: Array, s: Array) -> Array:
        """``q(x_s = k | x_t, x_0 = j)`` for every ``j`` and ``k`` (2): [..., K(j), K(k)].

        Args:
          xt: [...] classes at step ``t``.
          t, s: steps broadcastable against ``xt`` with ``0 <= s < t``.
        """
        k = self.num_classes
        m = self.m
        ab_t = jnp.asarray(self.abar(t))[..., None, None]
        ab_s = jnp.where(jnp.asarray(s) > 0, self.abar(s), 1.0)[..., None, None]
        ab_ts = ab_t / ab_s
        oh_t = jax.nn.one_hot(xt, k)[..., None, :]  # [..., 1, K(k)]
        m_xt = jnp.take(m, xt)[..., None, None]  # [..., 1, 1]
        step = ab_ts * oh_t + (1.0 - ab_ts) * m_xt  # q(x_t | x_s = k)  [..., 1, K]
        eye = jnp.eye(k)  # [K(j), K(k)]
        marg = ab_s * eye + (1.0 - ab_s) * m  # q(x_s = k | x_0 = j)  [..., K, K]
        num = step * marg
        return num / jnp.maximum(jnp.sum(num, axis=-1, keepdims=True), _EPS)

    def reverse_probs(self, p0: Array, xt: Array, t: Array, s: Array) -> Array:
        """``p(x_s | x_t) = sum_j q(x_s | x_t, x_0 = j) p0_j`` [..., K]; ``p0`` at ``s = 0``.

        Args:
          p0: [..., K] the network's clean-class probabilities.
          xt: [...] classes at step ``t``.
          t, s: steps (broadcastable against ``xt``), ``s < t``.
        """
        post = self.posterior_matrix(xt, t, s)  # [..., K, K]
        probs = jnp.einsum("...j,...jk->...k", p0, post)
        return jnp.where((jnp.asarray(s) > 0)[..., None], probs, p0)

    # ----------------------------------------------------------------- loss
    def loss(
        self,
        logits: Array,
        x0: Array,
        xt: Array,
        t: Array,
        aux: dict[str, Array] | None = None,
        mask: Array | None = None,
    ) -> Array:
        """Per-example loss (3), summed over the masked variables.

        Args:
          logits: [B, ..., K] network logits of ``p_theta(x_0 | x_t)``.
          x0, xt: [B, ...] clean and corrupted classes.
          t: [B] steps in ``1..T``.
          aux: unused (the process contract).
          mask: [B, ...] variables that count (the ones being generated).

        Returns:
          [B] losses.
        """
        del aux
        logp0 = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        p0 = jnp.exp(logp0)
        ce = -jnp.take_along_axis(logp0, x0[..., None], axis=-1)[..., 0]  # [B, ...]
        tt = _expand(t, x0)
        s = tt - 1
        q = self.posterior_matrix(xt, tt, s)  # [B, ..., K, K]
        q_true = jnp.take_along_axis(q, x0[..., None, None], axis=-2)[..., 0, :]  # [B, ..., K]
        p_rev = jnp.einsum("...j,...jk->...k", p0, q)
        kl = jnp.sum(
            q_true * (jnp.log(jnp.maximum(q_true, _EPS)) - jnp.log(jnp.maximum(p_rev, _EPS))),
            axis=-1,
        )
        vlb = jnp.where(tt == 1, ce, kl)
        qT = self.q_t0(x0, jnp.full_like(tt, self.steps))
        prior_kl = jnp.sum(
            qT * (jnp.log(jnp.maximum(qT, _EPS)) - jnp.log(self.m)), axis=-1
        )  # [B, ...]
        per = vlb + prior_kl / self.steps + self.ce_coeff * ce
        if mask is not None:
            per = per * mask
        return jnp.sum(per.reshape(per.shape[0], -1), axis=-1)

    def sample_times(self, key: Array, batch: int) -> Array:
        """Steps ``t ~ U{1, ..., T}`` [B] (float32)."""
        return jax.random.randint(key, (batch,), 1, self.steps + 1).astype(jnp.float32)
