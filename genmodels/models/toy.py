"""The toy method: flow matching on a 2-D ring of Gaussians with a small MLP.

It exercises every piece of the engine end to end in about a minute on a CPU: a shared
process (:class:`~genmodels.processes.flow.LinearFlow`), the sampler registry (any
``flow`` entry: ``euler``, ``heun``, ``ode``; ``boss`` with ``grid=``) through the
:class:`~genmodels.models.runner.Runner`, the training loop, checkpoints and the command
line. Samples are ``.npz`` files with key ``samples`` [N, 2] plus a PNG scatter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genmodels.core.types import identity_constrain
from genmodels.datasets.toy import energy_distance, ring_mixture
from genmodels.models.runner import Runner, batch_sharded_constrain, resolve_sampler, sampler_names
from genmodels.nets.mlp import TimeMLP
from genmodels.processes.flow import LinearFlow
from genmodels.samplers.registry import run_sampler
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import FunctionLoader


@dataclass(frozen=True)
class ToyConfig:
    """Config of the toy recipe.

    Attributes:
      modes, radius, std: the ring of Gaussians (data density).
      hidden, depth: MLP size.
      sampler: default sampler (a registry name).
      sample_steps: default steps when sampling.
      eval_size: held-out data points drawn for ``evaluate``.
    """

    modes: int = 8
    radius: float = 2.0
    std: float = 0.15
    hidden: int = 128
    depth: int = 3
    sampler: str = "euler"
    sample_steps: int = 100
    eval_size: int = 2000
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

    def build(self) -> ToyMethod:
        return ToyMethod(self)


class ToyMethod:
    """Flow matching on :func:`~genmodels.datasets.toy.ring_mixture`."""

    sample_suffix = ".npz"

    def __init__(self, config: ToyConfig):
        self.config = config
        self.data = ring_mixture(config.modes, config.radius, config.std)
        self.process = LinearFlow()
        self.processes = {"x": self.process}
        self.samplers = sampler_names(self.processes, config.sampler)
        self.runner = Runner()

    def init_model(self, key: jax.Array) -> nnx.Module:
        c = self.config
        return TimeMLP(2, hidden=c.hidden, depth=c.depth, rngs=nnx.Rngs(key))

    def loader(self) -> FunctionLoader:
        c = self.config
        # fresh draws each step: a pure function of (seed, step), so resume is exact
        base = jax.random.PRNGKey(c.train.seed + 12345)
        draw = jax.jit(lambda k: self.data.sample(k, c.train.batch_size))
        return FunctionLoader(
            fn=lambda step: {"x": np.asarray(draw(jax.random.fold_in(base, step)))},
            batch_size=c.train.batch_size,
        )

    def loss_fn(self, model: nnx.Module, batch: dict, key: jax.Array):
        x0 = batch["x"]  # [B, 2]
        kt, kc = jax.random.split(key)
        t = jax.random.uniform(kt, (x0.shape[0],))
        xt, aux = self.process.corrupt(kc, x0, t)
        loss = self.process.loss(model(xt, t), x0, xt, t, aux)
        return jnp.mean(loss), {}

    def sample(
        self,
        model: nnx.Module,
        key: jax.Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        **options: Any,
    ) -> np.ndarray:
        """``num`` points [num, 2] (one round of ``num`` unless ``batch_size``);
        ``options``: the sampler's (``boss``: ``grid``, which fixes the steps)."""
        if options.get("grid") is not None:
            options["grid"] = tuple(float(t) for t in options["grid"])
            steps = steps or len(options["grid"]) - 1
        name, steps, opts = resolve_sampler(self.processes, sampler, steps, self.config, **options)
        batch, procs = batch_size or max(num, 1), self.processes

        def body(net, key, mesh):
            field = lambda s, t, ctx: {"x": net(s["x"], t)}  # noqa: E731
            hook = batch_sharded_constrain(identity_constrain, mesh)
            shapes = {"x": (batch, 2)}
            out, _ = run_sampler(
                name,
                field,
                procs,
                {},
                key,
                shapes=shapes,
                steps=steps,
                options=opts,
                constrain=hook,
            )
            return out["x"]

        fn = self.runner.compile(model, batch, (name, steps, opts), body)
        parts = list(Runner.rounds(num, batch, key, lambda k, r: fn(k), progress=progress))
        return np.concatenate(parts)[:num] if parts else np.zeros((0, 2), np.float32)

    def write_samples(self, samples: np.ndarray, path: Path) -> None:
        path = Path(path)
        np.savez(path, samples=np.asarray(samples, np.float32))
        _scatter_png(samples, path.with_suffix(".png"))

    def read_samples(self, path: Path) -> np.ndarray:
        with np.load(path) as f:
            if "samples" not in f:
                raise ValueError(f"{path}: no 'samples' array (keys: {list(f.keys())})")
            x = f["samples"]
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"{path}: 'samples' has shape {x.shape}, expected [N, 2]")
        return x

    def reference(self, n: int, seed: int = 2024) -> np.ndarray:
        """A held-out draw of the data density (``seed`` differs from training draws)."""
        return np.asarray(self.data.sample(jax.random.PRNGKey(seed), n))

    def evaluate(
        self, samples: np.ndarray, split: str = "test", meta: dict | None = None
    ) -> dict[str, float]:
        """Energy distance to a held-out draw, and the share of samples per mode.

        Returns:
          ``energy_distance`` (and ``energy_distance_null``, the same statistic between
          two independent data draws of the same sizes, the noise floor), ``mode_tv`` (total
          variation between the mode histogram of the samples and the uniform weights) and
          ``far_fraction`` (samples more than 4 std from every mode).
        """
        del split, meta
        x = np.asarray(samples, np.float64)[: self.config.eval_size]
        ref = self.reference(self.config.eval_size)
        null = self.reference(len(x), seed=7)
        mu = np.asarray(self.data.means)
        d = np.sqrt(((x[:, None] - mu[None]) ** 2).sum(-1))
        comp = d.argmin(1)
        hist = np.bincount(comp, minlength=len(mu)) / len(x)
        return {
            "energy_distance": energy_distance(x, ref),
            "energy_distance_null": energy_distance(null, ref),
            "mode_tv": float(0.5 * np.abs(hist - 1.0 / len(mu)).sum()),
            "far_fraction": float(np.mean(d.min(1) > 4 * self.config.std)),
            "num_samples": len(x),
        }


def _scatter_png(samples: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5)
    ax.set_aspect("equal")
    ax.set_title(f"{len(samples)} toy samples")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
