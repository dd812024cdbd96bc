"""The toy recipe: flow matching on a 2-D ring of Gaussians with a small MLP.

It exercises the engine end to end in about a minute on a CPU: the flow method
(:class:`~genmodels.models.flow.FlowMethod`) on the toy task
(:class:`~genmodels.models.tasks.toy.ToyTask`), any ``flow`` sampler of the registry
(``euler``, ``heun``, ``ode``), the training loop, checkpoints and the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from flax import nnx

from genmodels.core.types import Array, Context, State
from genmodels.models.flow import FlowSettings
from genmodels.models.tasks.toy import ToyTask
from genmodels.nets.mlp import TimeMLP
from genmodels.processes.base import corrupt_state
from genmodels.train.config import OptimConfig, TrainConfig


@dataclass(frozen=True)
class ToyConfig(FlowSettings):
    """Config of the toy recipe.

    Attributes:
      modes, radius, std: the ring of Gaussians (data density).
      train_size: training points; eval_size: held-out points for ``evaluate``.
      hidden, depth: MLP size.
      sampler, sample_steps, sample_batch: sampling defaults.
    """

    # the data density and its draws
    modes: int = 8
    radius: float = 2.0
    std: float = 0.15
    train_size: int = 50_000
    eval_size: int = 2000

    # the network
    hidden: int = 128
    depth: int = 3

    # sampling defaults
    sampler: str = "euler"
    sample_steps: int = 100
    sample_batch: int = 4096
    sample_use_ema: bool = True
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=3000, batch_size=256, ema_decay=0.995, log_every=100, ckpt_every=1000
        )
    )
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=2e-3, warmup_steps=100, schedule="cosine", clip_norm=1.0
        )
    )
    corrupt: ClassVar = staticmethod(corrupt_state)
    whole_batches: ClassVar[bool] = False

    def task(self) -> ToyTask:
        return ToyTask(self.modes, self.radius, self.std, self.train_size, self.eval_size)

    def make_net(self, process, rngs: nnx.Rngs) -> ToyNet:
        del process
        return ToyNet(TimeMLP(2, hidden=self.hidden, depth=self.depth, rngs=rngs))


class ToyNet(nnx.Module):
    """``(state, t, ctx) -> {"x": v(x, t)}``: a :class:`TimeMLP` velocity field."""

    def __init__(self, mlp: TimeMLP):
        self.mlp = mlp

    def __call__(self, state: State, t: Array, ctx: Context, **kwargs) -> State:
        return {"x": self.mlp(state["x"], t)}
