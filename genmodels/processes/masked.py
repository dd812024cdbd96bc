"""Absorbing-state (masked) diffusion over integer tokens, with the MDLM/MD4 training loss.

A token leaf holds int32 categories in ``[0, K)``; the extra id ``K`` is the mask (absorbing
state). Forward process (the absorbing D3PM of Austin et al. 2021 in continuous time, as in
Sahoo et al. 2024 "MDLM" and Shi et al. 2024 "MD4"): each unpadded token is independently
kept with probability ``alpha(t)`` and replaced by the mask otherwise,

    q(x_t | x_0) = alpha(t) onehot(x_0) + (1 - alpha(t)) onehot(MASK),

with ``alpha(0) = 1`` (clean data) and ``alpha(1) = 0`` (all masked). Once masked, a token
stays masked as t grows, so the reverse process only ever *unmasks*.

Parameterization (MDLM's "SUBS", Sec. 3): the network outputs logits over the K real
categories only, i.e. (i) zero probability for the mask token and (ii) "carry-over
unmasking": tokens that are already unmasked are copied unchanged by the reverse process,
so their predictions are never used. The continuous-time NELBO (MDLM Sec. 3; MD4 derives
the same weighted cross-entropy) is then

    L = E_t [ -alpha'(t) / (1 - alpha(t)) * sum_{i masked in x_t} -log p_theta(x_0^i | x_t) ],

a weighted cross-entropy over masked positions only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import jax
import jax.numpy as jnp

from genmodels.core.types import Array, Aux, Mask


def _bcast(t: Array, like: Array) -> Array:
    """Reshape per-example times [B] so they broadcast against ``like`` [B, ...]."""
    t = jnp.asarray(t)
    return jnp.reshape(t, t.shape + (1,) * (like.ndim - t.ndim))


@dataclass(frozen=True)
class LinearSchedule:
    """``alpha(t) = 1 - t``: the masked fraction grows linearly (MDLM's log-linear noise
    ``sigma(t) = -log(1 - t)`` without its eps; MD4's "linear")."""

    def alpha(self, t: Array) -> Array:
        """Probability that a token is still unmasked at time ``t``."""
        return 1.0 - jnp.asarray(t)

    def alpha_prime(self, t: Array) -> Array:
        """d alpha / dt."""
        return -jnp.ones_like(jnp.asarray(t, jnp.result_type(float)))

    def mask_prob(self, t: Array) -> Array:
        """``1 - alpha(t)``, computed without cancellation near t = 0."""
        return jnp.asarray(t)

    def mask_prob_inverse(self, m: Array) -> Array:
        """The time ``t`` with ``1 - alpha(t) = m``."""
        return jnp.asarray(m)

    def alpha_inverse(self, a: Array) -> Array:
        """The time ``t`` with ``alpha(t) = a``."""
        return self.mask_prob_inverse(1.0 - jnp.asarray(a))


@dataclass(frozen=True)
class CosineSchedule:
    """``alpha(t) = 1 - cos(pi/2 (1 - t))`` (= ``1 - sin(pi t / 2)``).

    This is MD4's "cosine" schedule (md4/models/diffusion/md4.py, ``MaskingSchedule``,
    without its ``eps`` squeeze), i.e. MaskGIT's cosine masking ratio
    ``1 - alpha = cos(pi/2 (1 - t))``. Note MDLM's ``CosineNoise`` (noise_schedule.py) is a
    different curve, ``alpha(t) = cos(pi t / 2)``.
    """

    def alpha(self, t: Array) -> Array:
        """Probability that a token is still unmasked at time ``t``."""
        return 1.0 - jnp.sin(0.5 * math.pi * jnp.asarray(t))

    def alpha_prime(self, t: Array) -> Array:
        """d alpha / dt = -(pi/2) cos(pi t / 2)."""
        return -0.5 * math.pi * jnp.cos(0.5 * math.pi * jnp.asarray(t))

    def mask_prob(self, t: Array) -> Array:
        """``1 - alpha(t) = sin(pi t / 2)``, accurate near t = 0."""
        return jnp.sin(0.5 * math.pi * jnp.asarray(t))

    def mask_prob_inverse(self, m: Array) -> Array:
        """The time ``t`` with ``1 - alpha(t) = m``: ``(2/pi) arcsin(m)``."""
        return (2.0 / math.pi) * jnp.arcsin(jnp.clip(jnp.asarray(m), 0.0, 1.0))

    def alpha_inverse(self, a: Array) -> Array:
        """The time ``t`` with ``alpha(t) = a``."""
        return self.mask_prob_inverse(1.0 - jnp.asarray(a))


@dataclass(frozen=True)
class MaskedDiffusion:
    """Absorbing-state diffusion on one int32 token leaf (see the module docstring).

    Args:
      vocab_size: K, the number of real categories; the mask id is K.
      schedule: ``LinearSchedule()`` (default) or ``CosineSchedule()``.
      t_eps: times are clamped to ``[t_eps, 1]`` in ``corrupt``/``loss`` (the weight
        ``-alpha'/(1 - alpha)`` behaves like 1/t at 0) and ``sample_times`` draws from
        ``U(t_eps, 1)``. MD4 squeezes alpha by 1e-4; MDLM samples t from ``[1e-3, 1]``.

    Padding: ``mask`` (broadcastable to the leaf, 0 = padding) marks padded tokens; they are
    0 in every state, never masked and never counted in the loss.
    """

    vocab_size: int
    schedule: LinearSchedule | CosineSchedule = field(default_factory=LinearSchedule)
    t_eps: float = 1e-4
    #: process kind for the sampler registry
    kind: ClassVar[str] = "masked"

    @property
    def mask_id(self) -> int:
        """The absorbing token, ``vocab_size``."""
        return self.vocab_size

    def alpha(self, t: Array) -> Array:
        return self.schedule.alpha(t)

    def alpha_prime(self, t: Array) -> Array:
        return self.schedule.alpha_prime(t)

    def _clamp(self, t: Array) -> Array:
        return jnp.clip(jnp.asarray(t, jnp.float32), self.t_eps, 1.0)

    def prior(self, key: Array, shape: tuple[int, ...], mask: Array | None = None) -> Array:
        """All tokens masked (the t = 1 marginal); padded entries are 0.

        Args:
          key: unused (the prior is deterministic).
          shape: [B, ...] leaf shape.
          mask: padding mask broadcastable to ``shape`` or ``None``.

        Returns:
          int32 [B, ...].
        """
        del key
        x = jnp.full(shape, self.mask_id, jnp.int32)
        if mask is None:
            return x
        return jnp.where(jnp.broadcast_to(mask, shape) > 0, x, 0)

    def corrupt(self, key: Array, x0: Array, t: Array, mask: Mask = None) -> tuple[Array, Aux]:
        """Mask each unpadded token independently with probability ``1 - alpha(t)``.

        Args:
          key: PRNG key.
          x0: int [B, ...] clean tokens in ``[0, K)``.
          t: [B] times (clamped to ``[t_eps, 1]``).
          mask: padding mask broadcastable to ``x0`` or ``None``.

        Returns:
          ``(xt, aux)``: xt int32 [B, ...] with masked tokens set to K (padding 0);
          ``aux["is_masked"]`` bool [B, ...].
        """
        x0 = jnp.asarray(x0, jnp.int32)
        p = _bcast(self.schedule.mask_prob(self._clamp(t)), x0)  # [B, 1, ...]
        is_masked = jax.random.uniform(key, x0.shape) < p
        if mask is not None:
            real = jnp.broadcast_to(mask, x0.shape) > 0
            is_masked = is_masked & real
        xt = jnp.where(is_masked, self.mask_id, x0)
        if mask is not None:
            xt = jnp.where(real, xt, 0)
        return xt, {"is_masked": is_masked}

    def weight(self, t: Array) -> Array:
        """The NELBO weight ``-alpha'(t) / (1 - alpha(t))`` at ``max(t, t_eps)``; [B]."""
        tc = self._clamp(t)
        return -self.schedule.alpha_prime(tc) / self.schedule.mask_prob(tc)

    def loss(
        self, pred: Array, x0: Array, xt: Array, t: Array, aux: Aux, mask: Mask = None
    ) -> Array:
        """Continuous-time NELBO of MDLM / MD4 (module docstring), summed over tokens.

        Args:
          pred: [B, ..., K] logits over the real categories (SUBS: no mask logit).
          x0: int [B, ...] clean tokens.
          xt: int [B, ...] corrupted tokens (used when ``aux`` lacks ``"is_masked"``).
          t: [B] times.
          aux: from ``corrupt``.
          mask: padding mask broadcastable to ``x0`` or ``None``.

        Returns:
          [B] ``w(t) * sum_{masked i} CE(pred_i, x0_i)`` with ``w = -alpha'/(1 - alpha)``.
        """
        x0 = jnp.asarray(x0, jnp.int32)
        is_masked = aux.get("is_masked") if aux else None
        if is_masked is None:
            is_masked = xt == self.mask_id
        if mask is not None:
            is_masked = is_masked & (jnp.broadcast_to(mask, x0.shape) > 0)
        logp = jax.nn.log_softmax(pred.astype(jnp.float32), axis=-1)  # [B, ..., K]
        target = jnp.clip(x0, 0, self.vocab_size - 1)[..., None]
        nll = -jnp.take_along_axis(logp, target, axis=-1)[..., 0]  # [B, ...]
        nll = jnp.where(is_masked, nll, 0.0)
        per_example = jnp.sum(nll, axis=tuple(range(1, nll.ndim)))  # [B]
        return self.weight(t) * per_example

    def sample_times(self, key: Array, batch: int, antithetic: bool = True) -> Array:
        """Training times in ``[t_eps, 1]``; [batch].

        With ``antithetic`` the times are ``(u + i / batch) mod 1`` (one shared uniform,
        stratified over the batch), then mapped to ``[t_eps, 1]`` as in MDLM's ``_sample_t``
        (diffusion.py) and MD4's antithetic time sampling; this lowers the loss variance.
        """
        if antithetic:
            u = jax.random.uniform(key, ())
            u = jnp.mod(u + jnp.arange(batch, dtype=jnp.float32) / batch, 1.0)
        else:
            u = jax.random.uniform(key, (batch,))
        return (1.0 - self.t_eps) * u + self.t_eps
