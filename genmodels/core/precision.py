"""Categorical sampling with float64-grade Gumbel noise, without enabling x64 globally.

Zheng et al. 2024 ("Masked diffusion models are secretly time-agnostic masked models and
exploit inaccurate categorical sampling") show that Gumbel-max sampling with
float32 noise ``g = -log(-log u)`` is truncated: a float32 uniform has 23 random bits, so
``u <= 1 - 2^-23`` and ``g <= -log(-log(1 - 2^-23)) ~= 15.94`` (and ``g >= -log(-log(tiny))
~= -4.47``). A category whose logit is more than ``15.94 + 4.47 ~= 20.4`` below the top can
never be drawn, and categories with probabilities below ~1e-7 are under-sampled; summed over
a large vocabulary and many steps this acts like a lowered temperature. Sampling in float64
removes the effect in practice.

How to get float64 without ``jax_enable_x64``: JAX 0.10 has a ``jax.enable_x64(True)``
context manager, but it only works *around* a whole ``jax.jit`` call; entered inside a
traced function it yields float64 values during tracing while the surrounding jit is lowered
with x64 off, and lowering fails (dtype mismatches in reductions such as ``argmax``).
So :func:`categorical` does not toggle the flag. Instead, with ``precision=jnp.float64``:

- if x64 is enabled (globally, or because the caller wrapped the whole jitted call in
  ``with jax.enable_x64(True):``), the noise and the argmax are computed in float64;
- otherwise the noise is built from 64 random bits (two 32-bit words) so that it has no
  tail truncation in float32 either: it reaches ``g ~= 45.1`` on the upper tail (the naive
  ``-log(-log u)`` with JAX's 52-bit float64 uniform stops near 36.0) and ``g ~= -3.8`` on
  the lower one, i.e. probabilities down to ~e^-45 are represented. What remains of
  float32 is the rounding of the noise values and of ``logit + noise`` (relative errors of
  order 1e-6 or less on the selection probabilities, and no truncation).

``precision=jnp.float32`` reproduces the truncated float32 sampler (the same noise support
as ``jax.random.categorical`` in its default mode) for comparisons.

:func:`categorical_race` is the same draw written as MDLM writes it (Sahoo et al. 2024,
``_sample_categorical`` in kuleshov-group/mdlm): ``argmax_i w_i / E_i`` with
``E_i ~ Exp(1)`` over non-negative weights ``w``, which is Gumbel-max on ``log w``
(``g = -log E``). MDLM's float32 noise is ``E = 1e-10 - log(u + 1e-10)`` with ``u`` on
``torch.rand``'s float32 grid ``k 2^-24``, so ``E`` lies in ``[5.97e-8, 23.03]``: a weight
below ``5.97e-8 / 23.03 ~= 2.6e-9`` of the largest (log gap 19.8) is never drawn, and
small weights are under-drawn (``P(E < x)`` moves in steps of ``2^-24``). MDLM's masked
sampler races the K classes, weights ``p_k (alpha(s) - alpha(t))``, against the mask,
weight ``1 - alpha(s)``, so on a step of ``1/T`` the classes sit about ``T s`` times
below the mask entry and the truncation reaches far more probable classes than in a K-way
draw.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.core.types import Array

# Largest value the float32 noise can take: u = 1 - 2^-23 (23 random mantissa bits).
FLOAT32_GUMBEL_MAX = float(-np.log(-np.log1p(-(2.0**-23))))


def x64_enabled() -> bool:
    """Whether float64 arrays are available (``jax_enable_x64`` on, globally or scoped)."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64)) == jnp.float64


def _check_precision(precision) -> jnp.dtype:
    dt = jnp.dtype(precision)
    if dt not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ValueError(f"precision must be jnp.float32 or jnp.float64, got {dt}")
    return dt


def gumbel_from_bits_float32(bits: Array) -> Array:
    """Truncated float32 Gumbel noise from one 32-bit word per value.

    The uniform keeps the top 23 bits (``u = k 2^-23``, ``k < 2^23``) and is floored at
    the smallest normal float, as ``jax.random.uniform(minval=tiny)`` does.

    Args:
      bits: uint32 array.

    Returns:
      float32 array of the same shape, ``-log(-log u)`` in ``[-4.47, 15.94]``.
    """
    u = (bits >> 9).astype(jnp.float32) * jnp.float32(2.0**-23)
    u = jnp.maximum(u, jnp.finfo(jnp.float32).tiny)
    return -jnp.log(-jnp.log(u))


def gumbel_from_bits_64(bits_hi: Array, bits_lo: Array, dtype=jnp.float32) -> Array:
    """Gumbel noise from 64 random bits, accurate in both tails.

    ``U ~ U(0, 1)`` is written as ``U = V / 2`` (top bit 1) or ``U = 1 - V / 2`` (top bit
    0) with ``V`` the remaining 63 bits read as a fixed-point number in ``(0, 1]`` (cell
    midpoints, so ``V > 0``). Then ``E = -log U`` is ``log 2 - log V`` or
    ``-log1p(-V / 2)``: both keep full relative precision, also for ``E`` near 0 (the
    upper Gumbel tail, where ``-log(-log u)`` with ``u`` near 1 loses everything), and
    ``g = -log E``. Range: ``g`` in about ``[-3.81, 45.1]``.

    Args:
      bits_hi, bits_lo: uint32 arrays of the same shape.
      dtype: float32 or float64 (float64 needs x64 enabled).

    Returns:
      Gumbel(0, 1) noise of that shape and dtype.
    """
    half = bits_hi >> 31  # selects U < 1/2 (1) or U >= 1/2 (0)
    hi = (bits_hi & jnp.uint32(0x7FFFFFFF)).astype(dtype)
    lo = bits_lo.astype(dtype)
    # Rounding of the float conversion can give V == 1 (U == 1/2): both branches agree there.
    v = hi * dtype(2.0**-31) + lo * dtype(2.0**-63) + dtype(2.0**-64)  # (0, 1]
    e = jnp.where(half == 1, jnp.log(dtype(2.0)) - jnp.log(v), -jnp.log1p(-0.5 * v))
    return -jnp.log(e)


def gumbel_noise(key: Array, shape: tuple[int, ...], precision=jnp.float64) -> Array:
    """Standard Gumbel noise at the requested precision (see the module docstring).

    Args:
      key: PRNG key.
      shape: output shape.
      precision: ``jnp.float64`` (default; float64-grade, float64 arrays only when x64 is
        enabled) or ``jnp.float32`` (truncated float32 noise).

    Returns:
      float32 array, or float64 when ``precision`` is float64 and x64 is enabled.
    """
    dt = _check_precision(precision)
    if dt == jnp.float32:
        return gumbel_from_bits_float32(jax.random.bits(key, shape, jnp.uint32))
    bits = jax.random.bits(key, (2, *shape), jnp.uint32)  # [2, *shape]
    work = jnp.float64 if x64_enabled() else jnp.float32
    return gumbel_from_bits_64(bits[0], bits[1], work)


def categorical(key: Array, logits: Array, axis: int = -1, precision=jnp.float64) -> Array:
    """Draw ``argmax(logits + g)`` (Gumbel-max) with noise of the requested precision.

    Implements the float64 categorical sampling recommended by Zheng et al. 2024
    without requiring ``jax_enable_x64``; usable inside ``jit``/``scan``/``vmap``.

    Args:
      key: PRNG key.
      logits: [..., K, ...] unnormalized log probabilities (``-inf`` allowed, not all).
      axis: the category axis.
      precision: ``jnp.float64`` (default) or ``jnp.float32`` (truncated, for comparison).

    Returns:
      int32 indices with ``axis`` removed.
    """
    dt = _check_precision(precision)
    g = gumbel_noise(key, logits.shape, dt)
    work = g.dtype
    logits = logits.astype(work)
    if dt == jnp.float64:
        # Centre the logits so the float32 sum logit + noise is rounded at magnitude ~|g|,
        # not at the (arbitrary) magnitude of the raw logits.
        logits = logits - jax.lax.stop_gradient(jnp.max(logits, axis=axis, keepdims=True))
    return _first_argmax(logits + g, axis)


#: MDLM's float32 noise: the smallest and the largest ``E = 1e-10 - log(u + 1e-10)``
MDLM_EXP_MIN = float(1e-10 - np.log1p(-(2.0**-24)))
MDLM_EXP_MAX = float(-np.log(1e-10))


def exponential_from_bits_mdlm(bits: Array) -> Array:
    """MDLM's float32 exponential noise from one 32-bit word per value.

    ``E = 1e-10 - log(u + 1e-10)`` in float32 with ``u = k 2^-24``, ``k`` the top 24 bits
    (the grid of ``torch.rand`` in float32, which MDLM's ``_sample_categorical`` draws).

    Args:
      bits: uint32 array.

    Returns:
      float32 array of the same shape, in ``[MDLM_EXP_MIN, MDLM_EXP_MAX]`` ~=
      ``[5.97e-8, 23.03]``.
    """
    u = (bits >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)
    eps = jnp.float32(1e-10)
    return eps - jnp.log(u + eps)


def categorical_race(
    key: Array, log_weights: Array, axis: int = -1, precision=jnp.float64
) -> Array:
    """Draw ``i`` with probability ``w_i / sum(w)`` as the exponential race
    ``argmax_i w_i / E_i``, ``E_i ~ Exp(1)``, ``w = exp(log_weights)``.

    ``precision=jnp.float32`` is MDLM's ``_sample_categorical`` (module docstring): the
    weights in float32 probability space over :func:`exponential_from_bits_mdlm` noise,
    truncated. ``jnp.float64`` is the same race written as Gumbel-max,
    ``argmax(log w - log E)``, through :func:`categorical` with float64-grade noise.

    Args:
      key: PRNG key.
      log_weights: [..., K, ...] log of non-negative weights (unnormalized; ``-inf`` for a
        zero weight, not all).
      axis: the category axis.
      precision: ``jnp.float64`` (default) or ``jnp.float32`` (MDLM's float32 draw).

    Returns:
      int32 indices with ``axis`` removed.
    """
    dt = _check_precision(precision)
    if dt == jnp.float64:
        return categorical(key, log_weights, axis=axis, precision=dt)
    w = jnp.exp(log_weights.astype(jnp.float32))
    e = exponential_from_bits_mdlm(jax.random.bits(key, log_weights.shape, jnp.uint32))
    return _first_argmax(w / e, axis)


def _first_argmax(z: Array, axis: int) -> Array:
    """``argmax`` (first index of the maximum) as max + masked min over an iota.

    Equal to ``jnp.argmax``; XLA's CPU backend otherwise fuses the Gumbel transform into a
    slow scalar reduction loop (about 4x slower, measured by benchmarks/samplers.py).
    """
    axis = axis % z.ndim
    m = jnp.max(z, axis=axis, keepdims=True)
    iota = jax.lax.broadcasted_iota(jnp.int32, z.shape, axis)
    return jnp.min(jnp.where(z == m, iota, z.shape[axis]), axis=axis).astype(jnp.int32)
