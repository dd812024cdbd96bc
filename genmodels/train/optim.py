"""optax optimizer and learning-rate schedule from an :class:`OptimConfig`."""

from __future__ import annotations

import jax
import optax

from genmodels.train.config import OptimConfig


def make_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Warm-up followed by a constant, cosine or staircase-exponential schedule."""
    decay_steps = max(total_steps - cfg.warmup_steps, 1)
    if cfg.schedule == "constant":
        main = optax.constant_schedule(cfg.lr)
    elif cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(cfg.lr, decay_steps, alpha=cfg.final_lr_frac)
    elif cfg.schedule == "exponential":
        main = optax.exponential_decay(
            cfg.lr,
            transition_steps=max(cfg.decay_every, 1),
            decay_rate=cfg.decay_rate,
            staircase=True,
        )
    else:  # pragma: no cover - Literal guards this
        raise ValueError(
            f"unknown schedule {cfg.schedule!r}; choose constant, cosine or exponential"
        )
    if cfg.warmup_steps <= 0:
        return main
    warm = optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps)
    return optax.join_schedules([warm, main], [cfg.warmup_steps])


def make_optimizer(
    cfg: OptimConfig, total_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Build the gradient transformation (clip -> weight decay -> Adam -> schedule).

    Returns:
      ``(tx, schedule)``; the schedule is returned for logging the learning rate.
    """
    sched = make_schedule(cfg, total_steps)
    parts: list[optax.GradientTransformation] = []
    if cfg.clip_norm is not None and cfg.clip_norm > 0:
        clip = optax.clip_by_global_norm(cfg.clip_norm)
        if cfg.clip_per_module:
            clip = _per_module(clip)
        parts.append(clip)
    if cfg.weight_decay > 0 and not cfg.decoupled_weight_decay:
        parts.append(optax.add_decayed_weights(cfg.weight_decay))
    parts.append(optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
    if cfg.weight_decay > 0 and cfg.decoupled_weight_decay:
        # AdamW multiplies the decay by the learning rate too (Loshchilov & Hutter).
        parts.append(optax.add_decayed_weights(cfg.weight_decay))
    parts.append(optax.scale_by_learning_rate(sched))
    return optax.chain(*parts), sched


def _per_module(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """Apply ``inner`` separately to each top-level entry of the parameter tree."""

    def label_of(path, _):
        head = path[0]
        return str(getattr(head, "key", getattr(head, "name", getattr(head, "idx", head))))

    def labels(params):
        return jax.tree_util.tree_map_with_path(label_of, params)

    def tx_for(params):
        names = set(jax.tree.leaves(labels(params)))
        return optax.multi_transform({n: inner for n in names}, labels)

    def init(params):
        return tx_for(params).init(params)

    def update(updates, state, params=None):
        return tx_for(updates).update(updates, state, params)

    return optax.GradientTransformation(init, update)
