"""Linear-interpolant flow matching / rectified flow, with optional minibatch-OT coupling.

Convention shared by the whole package: ``t = 0`` is data and ``t = 1`` is noise. The
forward path is the straight line

    x_t = (1 - t) x_0 + t eps,    eps ~ N(0, I),

(Liu et al. 2023, "Flow straight and fast"; Lipman et al. 2023, "Flow matching",
the conditional OT path with sigma_min = 0), so ``a_t = 1 - t`` and ``s_t = t`` in the
notation of :class:`genmodels.core.mixture.GaussianMixture`. The regression target is the
time derivative of the path, ``v = dx_t/dt = eps - x_0``; the sampler integrates
``dx/dt = v(x, t)`` from ``t = 1`` down to ``t = 0``. The ideal velocity is
``E[eps - x_0 | x_t] = (x_t - E[x_0 | x_t]) / t``.

Minibatch OT coupling (Tong et al. 2024, "Improving and generalizing flow-based generative
models with minibatch optimal transport"; Pooladian et al. 2023): within a batch, noise
rows are re-paired to data rows by an exact assignment that minimizes the summed squared
distance, which straightens the conditional paths. The assignment is solved exactly with
``scipy.optimize.linear_sum_assignment`` on the host through ``jax.pure_callback`` (the
callback runs inside ``jax.jit``; on an accelerator it costs one small device-host copy of
the ``[B, B]`` cost matrix per call, negligible next to a network evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from genmodels.core.masks import masked_mean
from genmodels.core.types import Array, Aux, Mask
from genmodels.processes.base import uniform_times


def _flat(x: Array) -> Array:
    return x.reshape(x.shape[0], -1)


def ot_cost_matrix(x0: Array, eps: Array, mask: Array | None = None) -> Array:
    """Squared distances between every data row and every noise row.

    Args:
      x0: [B, ...] data.
      eps: [B, ...] noise.
      mask: broadcastable to ``x0`` or ``None``; row ``i`` is compared on the entries
        that are real for data example ``i`` (its padding does not count).

    Returns:
      [B, B] with ``C[i, j] = sum_m mask_i (x0_i - eps_j)^2``.
    """
    m = jnp.ones_like(x0) if mask is None else jnp.broadcast_to(mask, x0.shape).astype(x0.dtype)
    xf, ef, mf = _flat(x0 * m), _flat(eps), _flat(m)  # [B, F]
    # Expanded square: avoids materializing [B, B, F]. Precision HIGHEST keeps full float32
    # products on accelerators (no TF32/bf16 passes), whose error would swamp the gaps
    # that decide an assignment.
    hi = jax.lax.Precision.HIGHEST
    cross = jnp.matmul(xf, ef.T, precision=hi)  # [B, B]
    noise_sq = jnp.matmul(mf, (ef**2).T, precision=hi)  # [B, B]
    return jnp.sum(xf**2, axis=1)[:, None] - 2.0 * cross + noise_sq


def _lsa_host(cost: np.ndarray) -> np.ndarray:
    # linear_sum_assignment returns rows sorted, so cols[i] is the column matched to row i.
    _, cols = scipy.optimize.linear_sum_assignment(np.asarray(cost, dtype=np.float64))
    return cols.astype(np.int32)


def ot_permutation(x0: Array, eps: Array, mask: Array | None = None) -> Array:
    """Exact minibatch OT assignment of noise rows to data rows (squared Euclidean cost).

    Solves ``min_perm sum_i C[i, perm[i]]`` with the Hungarian/Jonker-Volgenant solver of
    SciPy through ``jax.pure_callback`` (jit compatible; under ``vmap`` the callback runs
    sequentially per batch).

    Args:
      x0: [B, ...] data.
      eps: [B, ...] noise.
      mask: optional padding mask broadcastable to ``x0``.

    Returns:
      [B] int32 permutation: noise row ``perm[i]`` is paired with data row ``i``.
    """
    cost = ot_cost_matrix(x0, eps, mask)
    out = jax.ShapeDtypeStruct((x0.shape[0],), jnp.int32)
    return jax.pure_callback(_lsa_host, out, jax.lax.stop_gradient(cost), vmap_method="sequential")


def ot_pair(x0: Array, eps: Array, mask: Array | None = None) -> Array:
    """Re-pair noise to data within a batch by the exact OT assignment.

    Each returned row is still an i.i.d. N(0, I) draw (a permutation of i.i.d. rows), so
    the prior marginal is unchanged; only the coupling with ``x0`` becomes (minibatch) OT.

    Args:
      x0: [B, ...] data.
      eps: [B, ...] noise.
      mask: optional padding mask broadcastable to ``x0``.

    Returns:
      [B, ...] the rows of ``eps`` reordered so that ``sum_i ||x0_i - out_i||^2`` is minimal.
    """
    return eps[ot_permutation(x0, eps, mask)]


@dataclass(frozen=True)
class LinearFlow:
    """Rectified flow / flow matching with the linear interpolant and a N(0, I) prior.

    Args:
      ot_coupling: re-pair noise and data within each batch by exact minibatch OT
        (:func:`ot_pair`) in :meth:`corrupt`. The coupling is per leaf; a joint coupling
        of several leaves would call :func:`ot_permutation` on the concatenated state.
      t_eps: lower end of the training times drawn by :meth:`sample_time`
        (``t ~ U(t_eps, 1)``; 1e-3 as in the rectified-flow code of Liu et al.).
    """

    ot_coupling: bool = False
    t_eps: float = 1e-3
    #: process kind for the sampler registry
    kind: ClassVar[str] = "flow"

    def ode_drift(self, velocity: Array, x: Array, t: Array) -> Array:
        """``dx/dt = v(x, t)``: the network's velocity is the ODE drift."""
        del x, t
        return velocity

    def ode_time(self, t: Array) -> Array:
        """The network's time at ODE time ``t`` (the same)."""
        return t

    def ode_span(self, eps: float) -> tuple[float, float]:
        """``(1, eps)``: from the N(0, I) prior at ``t = 1`` towards the data at ``t = 0``,
        stopping at ``eps`` (an adaptive solver need not resolve ``t -> 0``, where the
        velocity of a sharp data distribution becomes stiff; what is left is noise of
        scale ``eps``)."""
        return (1.0, float(eps))

    def marginal_coefs(self, t: Array) -> tuple[Array, Array]:
        """``(a_t, s_t) = (1 - t, t)`` so that ``x_t = a_t x_0 + s_t eps``."""
        t = jnp.asarray(t)
        return 1.0 - t, t

    def sample_time(self, key: Array, batch: int) -> Array:
        """Training times ``t ~ U(t_eps, 1)`` [B]."""
        return uniform_times(key, batch, eps=self.t_eps, t_max=1.0)

    def prior(self, key: Array, shape: tuple[int, ...], mask: Array | None = None) -> Array:
        """A N(0, I) draw of ``shape``; padded entries are 0."""
        z = jax.random.normal(key, shape, jnp.float32)
        return z if mask is None else jnp.where(mask > 0, z, 0.0)

    def corrupt(self, key: Array, x0: Array, t: Array, mask: Mask = None) -> tuple[Array, Aux]:
        """Point on the straight path between ``x0`` and fresh (optionally OT-paired) noise.

        Args:
          key: PRNG key.
          x0: [B, ...] clean data.
          t: [B] times in [0, 1].
          mask: optional padding mask broadcastable to ``x0``.

        Returns:
          ``(x_t, {"noise": eps, "target": eps - x0})``, all [B, ...], padding zeroed.
        """
        eps = jax.random.normal(key, x0.shape, x0.dtype)
        if self.ot_coupling:
            eps = ot_pair(x0, eps, mask)
        if mask is not None:
            eps = jnp.where(mask > 0, eps, 0.0)
            x0 = jnp.where(mask > 0, x0, 0.0)
        tb = t.reshape((-1,) + (1,) * (x0.ndim - 1)).astype(x0.dtype)  # [B, 1, ...]
        xt = (1.0 - tb) * x0 + tb * eps
        return xt, {"noise": eps, "target": eps - x0}

    def loss(
        self, pred: Array, x0: Array, xt: Array, t: Array, aux: Aux, mask: Mask = None
    ) -> Array:
        """Flow-matching loss: masked mean of ``(pred - (eps - x0))^2`` per example.

        Args:
          pred: [B, ...] predicted velocity.
          x0, xt, t: unused beyond shape (the target is in ``aux``).
          aux: output of :meth:`corrupt` (``"target"``).
          mask: optional padding mask.

        Returns:
          [B] per-example loss.
        """
        del x0, xt, t
        return masked_mean((pred - aux["target"]) ** 2, mask)

    @staticmethod
    def velocity_from_denoised(xt: Array, x0_hat: Array, t: Array) -> Array:
        """Velocity ``(x_t - x0_hat) / t`` implied by a data estimate (ideal when exact).

        Args:
          xt: [B, ...]; x0_hat: [B, ...]; t: [B] with t > 0.

        Returns:
          [B, ...].
        """
        tb = t.reshape((-1,) + (1,) * (xt.ndim - 1))
        return (xt - x0_hat) / tb
