"""flax.nnx networks; they stand alone (no process, sampler or domain imports)."""

from genmodels.nets.embed import sinusoidal_embedding
from genmodels.nets.graph import (
    GDSS_NET_CONFIGS,
    GDSSNetConfig,
    ScoreNetworkA,
    ScoreNetworkX,
)
from genmodels.nets.mlp import TimeMLP

__all__ = [
    "GDSS_NET_CONFIGS",
    "GDSSNetConfig",
    "ScoreNetworkA",
    "ScoreNetworkX",
    "TimeMLP",
    "sinusoidal_embedding",
]
