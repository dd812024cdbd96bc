"""The training engine: optax optimizer, EMA, orbax checkpoints, logging, sharding."""

from genmodels.train.checkpoint import Checkpointer
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader, FunctionLoader, Loader
from genmodels.train.ema import ema_update
from genmodels.train.export import export_model
from genmodels.train.logging import MetricsLogger, read_metrics
from genmodels.train.loop import NonFiniteLossError, TrainResult, load_model, train
from genmodels.train.optim import make_optimizer, make_schedule
from genmodels.train.sharding import batch_sharded, data_mesh, replicated, shard_batch

__all__ = [
    "ArrayLoader",
    "Checkpointer",
    "FunctionLoader",
    "Loader",
    "MetricsLogger",
    "NonFiniteLossError",
    "OptimConfig",
    "TrainConfig",
    "TrainResult",
    "batch_sharded",
    "data_mesh",
    "ema_update",
    "export_model",
    "load_model",
    "make_optimizer",
    "make_schedule",
    "read_metrics",
    "replicated",
    "shard_batch",
    "train",
]
