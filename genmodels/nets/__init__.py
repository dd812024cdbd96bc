"""flax.nnx networks; they stand alone (no process, sampler or domain imports)."""

from genmodels.nets.embed import sinusoidal_embedding
from genmodels.nets.graph import (
    GDSS_NET_CONFIGS,
    GDSSNetConfig,
    ScoreNetworkA,
    ScoreNetworkX,
)
from genmodels.nets.mlp import TimeMLP
from genmodels.nets.periodic import PeriodicDecoder, PeriodicEncoder

__all__ = [
    "GDSS_NET_CONFIGS",
    "GDSSNetConfig",
    "PeriodicDecoder",
    "PeriodicEncoder",
    "ScoreNetworkA",
    "ScoreNetworkX",
    "TimeMLP",
    "sinusoidal_embedding",
]
