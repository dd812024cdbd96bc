"""Frozen configuration dataclasses of the training engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule.

    The gradient is clipped first (``clip_norm``), then weight decay is applied either as a
    coupled L2 term added to the gradient (PyTorch ``Adam(weight_decay=...)``, what GDSS
    uses) or decoupled (AdamW), then Adam, then the schedule.

    Attributes:
      lr: peak learning rate.
      b1, b2, eps: Adam moments.
      weight_decay: weight-decay coefficient (0 disables it).
      decoupled_weight_decay: AdamW-style decay instead of an L2 term in the gradient.
      clip_norm: global-norm gradient clipping (``None`` disables it).
      clip_per_module: clip each top-level submodule's gradient separately (GDSS clips
        its two score networks one by one) instead of the joint global norm.
      warmup_steps: linear warm-up from 0 to ``lr``.
      schedule: ``constant``, ``cosine`` (to ``final_lr_frac * lr`` at the last step) or
        ``exponential`` (times ``decay_rate`` every ``decay_every`` steps, staircase: GDSS's
        per-epoch ``ExponentialLR``).
    """

    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False
    clip_norm: float | None = 1.0
    clip_per_module: bool = False
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine", "exponential"] = "constant"
    decay_rate: float = 1.0
    decay_every: int = 1
    final_lr_frac: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Length, batching, EMA, logging and checkpointing of one training run.

    Attributes:
      steps: total optimizer steps.
      batch_size: global batch (split over all local devices; must divide evenly).
      seed: seeds parameters, data order and per-step keys.
      ema_decay: parameter EMA decay (0 disables EMA: the EMA equals the parameters).
      ema_warmup: after ``n`` updates decay by ``min(ema_decay, (1 + n) / (10 + n))``, so
        the average forgets the initial parameters early (the ``use_num_updates`` EMA of
        score_sde, GDSS and MDLM); off: ``ema_decay`` from the first step.
      log_every: steps between JSONL log lines and non-finite-loss checks.
      ckpt_every: steps between checkpoints (a checkpoint is also written at the end).
      keep_checkpoints: how many of the latest checkpoints to keep.
      tensorboard: also write TensorBoard scalars (needs ``tensorboardX``).
      progress: show a tqdm progress bar.
      async_checkpointing: write checkpoints in a background thread (a run killed while
        one is in flight loses that checkpoint, never an earlier one).
    """

    steps: int = 1000
    batch_size: int = 128
    seed: int = 0
    ema_decay: float = 0.999
    ema_warmup: bool = False
    log_every: int = 50
    ckpt_every: int = 500
    keep_checkpoints: int = 3
    tensorboard: bool = False
    progress: bool = True
    async_checkpointing: bool = True
