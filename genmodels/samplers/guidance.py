"""Guidance: conditional sampling as a combination of model outputs, for every sampler.

A conditional network reads its condition from the context: ``ctx["cond"]`` (a class
label ``[B]`` int, or a vector of normalised properties ``[B, P]``) and
``ctx["cond_keep"]`` (``[B]`` float, 1 = conditioned, 0 = the unconditional "null"
condition). Training drops the condition of each example with probability ``p_uncond``
(:func:`drop_condition`), so one network learns both. Guidance then wraps the network's
``model_fn(state, t, ctx) -> dict`` into another ``model_fn`` of the same signature, so
every registered sampler of every process family runs guided with no change:

- **classifier-free** (Ho & Salimans 2022, "Classifier-free diffusion guidance"):
  ``out = out_u + w (out_c - out_u)`` per leaf, the conditional and unconditional outputs
  from one call on the doubled batch (:func:`classifier_free`). ``w = 1`` is the plain
  conditional model, ``w = 0`` the unconditional one, ``w > 1`` sharpens. Every
  continuous prediction (a score, EDM's denoised ``D``, a flow velocity) is affine in
  the score with the same offset, so the combination is the guided score
  ``s_u + w (s_c - s_u)`` whichever the network predicts. For logits (masked
  diffusion, PARD) it is the same combination of log-probabilities,
  ``log p_u + w (log p_c - log p_u)`` (renormalised by the sampler's softmax); classes
  impossible under both (``-inf``) stay impossible.
- **classifier / regressor** (Dhariwal & Nichol 2021; MOOD, Lee et al. 2023 for GDSS's
  ``(X, A)``): ``grad_fn(state, t, ctx)`` returns ``grad_x log p(y | x_t, t)`` per leaf
  (from a time-conditioned predictor trained on noisy states) and the score moves by
  ``scale`` times it (:func:`gradient_guided`). Per process family the score shift
  ``ds`` becomes a shift of what the network predicts (:func:`score_to_output`): the
  score itself for an SDE, ``sigma^2 ds`` for EDM's denoiser (``D = x + sigma^2 s``),
  ``-t / (1 - t) ds`` for the linear flow (``x_t = (1 - t) x_0 + t eps`` gives
  ``v = -(x + t s) / (1 - t)``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from genmodels.core.types import Array, Context, FieldFn, State

__all__ = [
    "COND",
    "KEEP",
    "Conditioning",
    "Guidance",
    "classifier_free",
    "condition_context",
    "drop_condition",
    "gradient_guided",
    "guided_model",
    "one_hot_condition",
    "resolve_condition",
    "score_to_output",
]

#: context keys of the condition and of its keep flag
COND, KEEP = "cond", "cond_keep"


@dataclass(frozen=True)
class Conditioning:
    """What a recipe's network is conditioned on (a config field).

    Attributes:
      kind: ``""`` (unconditional) or ``"label"`` (a class index per example).
      num_classes: classes of a ``label`` condition.
      p_uncond: probability that training drops an example's condition (Ho & Salimans
        2022 use 0.1 or 0.2), so the same network is the unconditional model.
    """

    kind: str = ""
    num_classes: int = 0
    p_uncond: float = 0.1

    def __post_init__(self):
        if self.kind not in ("", "label"):
            raise ValueError(f"condition kind must be '' or 'label', got {self.kind!r}")
        if self.kind == "label" and self.num_classes < 2:
            raise ValueError(f"a label condition needs num_classes >= 2, got {self.num_classes}")
        if not 0.0 <= self.p_uncond < 1.0:
            raise ValueError(f"p_uncond must be in [0, 1), got {self.p_uncond}")


@dataclass(frozen=True)
class Guidance:
    """How a conditional model is sampled.

    Attributes:
      weight: classifier-free weight ``w`` (1: the conditional model as trained, no
        extra network call; 0: unconditional).
      scale: classifier / regressor gradient scale (0: none; needs a ``grad_fn``).
    """

    weight: float = 1.0
    scale: float = 0.0


def resolve_condition(condition: Conditioning, options: dict) -> tuple[int | None, Guidance | None]:
    """A sampling request checked against a model's condition.

    Args:
      condition: what the model was trained on.
      options: sampling options; ``label`` (the class to sample; absent: unconditional
        sampling) and ``guidance`` (the classifier-free weight; absent: 1, the
        conditional model) are popped from it.

    Returns:
      ``(label, Guidance)``, or ``(None, None)`` for unconditional sampling.

    Raises:
      ValueError: a label for an unconditional model or out of range, or a weight
        without a label.
    """
    label, weight = options.pop("label", None), options.pop("guidance", None)
    if label is None:
        if weight is not None:
            raise ValueError("guidance needs a condition to guide toward (label=...)")
        return None, None
    if condition.kind != "label":
        raise ValueError("this model is unconditional; label= needs a class-conditional one")
    if not 0 <= int(label) < condition.num_classes:
        raise ValueError(f"label must be in [0, {condition.num_classes}), got {label}")
    return int(label), Guidance(weight=1.0 if weight is None else float(weight))


def condition_context(ctx: Context, cond: Array, keep: Array | float = 1.0) -> Context:
    """``ctx`` with the condition ``cond`` ([B] labels or [B, P] properties) and its keep
    flag ([B] float, broadcast from a scalar)."""
    cond = jnp.asarray(cond)
    b = cond.shape[0]
    return {**ctx, COND: cond, KEEP: jnp.broadcast_to(jnp.asarray(keep, jnp.float32), (b,))}


def one_hot_condition(ctx: Context | None, num_classes: int) -> Array | None:
    """The one-hot label of a ``label`` condition times its keep flag, [B, num_classes]
    (all zeros = the null label, EDM's unconditional input); ``None`` without one."""
    if not ctx or COND not in ctx or num_classes == 0:
        return None
    keep = ctx.get(KEEP, 1.0)
    return jax.nn.one_hot(ctx[COND], num_classes) * jnp.reshape(keep, (-1, 1))


def drop_condition(key: Array, ctx: Context, p_uncond: float) -> Context:
    """Training-time condition dropout: each example keeps its condition with probability
    ``1 - p_uncond`` (``cond_keep`` multiplied by a Bernoulli draw [B]). A context without
    a condition is returned unchanged."""
    if COND not in ctx or p_uncond <= 0:
        return ctx
    b = jnp.shape(ctx[COND])[0]
    keep = jax.random.bernoulli(key, 1.0 - p_uncond, (b,)).astype(jnp.float32)
    return {**ctx, KEEP: ctx.get(KEEP, jnp.ones((b,), jnp.float32)) * keep}


def _double(tree: Any, batch: int) -> Any:
    """Every leaf with a leading batch axis of size ``batch`` concatenated with itself."""

    def one(x):
        x = jnp.asarray(x)
        return jnp.concatenate([x, x]) if x.ndim and x.shape[0] == batch else x

    return jax.tree.map(one, tree)


def _combine(cond: Array, uncond: Array, w: float) -> Array:
    """``uncond + w (cond - uncond)``; entries ``-inf`` in both stay ``-inf`` (logits of
    impossible classes), where the formula would give NaN."""
    out = uncond + w * (cond - uncond)
    both = jnp.isneginf(cond) & jnp.isneginf(uncond)
    return jnp.where(both, -jnp.inf, out)


def classifier_free(model_fn: FieldFn, weight: float) -> FieldFn:
    """``model_fn`` under classifier-free guidance of weight ``weight``.

    Args:
      model_fn: ``(state, t [B], ctx) -> dict``; ``ctx`` holds ``cond`` and ``cond_keep``.
      weight: ``w`` of ``out_u + w (out_c - out_u)``.

    Returns:
      a ``model_fn`` making one network call on the doubled batch ``[2B]`` (conditioned
      rows first) per call: the same NFE as the unguided sampler, twice the rows.
    """
    if weight == 1.0:
        return model_fn

    def guided(state: State, t: Array, ctx: Context) -> State:
        b = next(iter(state.values())).shape[0]
        t = jnp.broadcast_to(jnp.asarray(t), (b,))
        keep = jnp.concatenate([ctx[KEEP], jnp.zeros_like(ctx[KEEP])])  # [2B]
        ctx2 = {**_double({k: v for k, v in ctx.items() if k != KEEP}, b), KEEP: keep}
        out = model_fn(_double(state, b), jnp.concatenate([t, t]), ctx2)
        return {k: _combine(v[:b], v[b:], weight) for k, v in out.items()}

    return guided


def score_to_output(process: Any, t: Array, shape: tuple[int, ...]) -> Array:
    """The factor turning a score shift into a shift of what the network predicts for
    ``process`` at time (or noise level) ``t`` [B], shaped to broadcast over ``shape``.

    Raises:
      ValueError: a process family without a score (masked, discrete, CDVAE levels).
    """
    t = jnp.asarray(t, jnp.float32).reshape((-1,) + (1,) * (len(shape) - 1))
    kind = process.kind
    if kind == "sde":
        return jnp.ones_like(t)
    if kind == "pfgmpp":  # t is sigma: D = x + sigma^2 s
        return t**2
    if kind == "flow":  # v = -(x + t s) / (1 - t); clamped where the prior sits (t = 1)
        return -t / jnp.maximum(1.0 - t, 1e-3)
    raise ValueError(f"gradient guidance needs a score; a {kind!r} process has none")


def gradient_guided(
    model_fn: FieldFn,
    processes: Mapping[str, Any],
    grad_fn: Callable[[State, Array, Context], State],
    scale: float,
) -> FieldFn:
    """``model_fn`` with classifier / regressor guidance: the score of each leaf moved by
    ``scale * grad_fn(state, t, ctx)[leaf]`` (``grad_x log p(y | x_t, t)``), converted to
    the network's prediction by :func:`score_to_output`. Leaves ``grad_fn`` omits are
    unchanged."""
    if scale == 0:
        return model_fn

    def guided(state: State, t: Array, ctx: Context) -> State:
        out = dict(model_fn(state, t, ctx))
        grads = grad_fn(state, t, ctx)
        for k, g in grads.items():
            coef = score_to_output(processes[k], t, g.shape)
            out[k] = out[k] + scale * coef * g
        return out

    return guided


def guided_model(
    model_fn: FieldFn,
    processes: Mapping[str, Any],
    guidance: Guidance | None,
    grad_fn: Callable[[State, Array, Context], State] | None = None,
) -> FieldFn:
    """``model_fn`` under ``guidance`` (``None``: unchanged): classifier-free first, then
    the gradient term (which needs ``grad_fn`` when ``guidance.scale != 0``)."""
    if guidance is None:
        return model_fn
    fn = classifier_free(model_fn, guidance.weight)
    if guidance.scale:
        if grad_fn is None:
            raise ValueError("gradient guidance (scale != 0) needs a property predictor")
        fn = gradient_guided(fn, processes, grad_fn, guidance.scale)
    return fn
