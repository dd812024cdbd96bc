"""flax.nnx networks; they stand alone (no process, sampler or domain imports)."""

from genmodels.nets.classifier import ClassifierConfig, ImageClassifier
from genmodels.nets.conv import TokenConvConfig, TokenConvNet
from genmodels.nets.embed import sinusoidal_embedding
from genmodels.nets.graph import (
    GDSS_NET_CONFIGS,
    GDSSNetConfig,
    ScoreNetworkA,
    ScoreNetworkX,
)
from genmodels.nets.graph_transformer import GraphTransformer, GraphTransformerConfig
from genmodels.nets.mlp import SiLUMLP, TimeMLP
from genmodels.nets.periodic import PeriodicDecoder, PeriodicEncoder
from genmodels.nets.ppgn import PPGNTransformer, PPGNTransformerConfig, causal_block_mask
from genmodels.nets.unet import UNet, UNetConfig

__all__ = [
    "ClassifierConfig",
    "GDSS_NET_CONFIGS",
    "GDSSNetConfig",
    "GraphTransformer",
    "GraphTransformerConfig",
    "ImageClassifier",
    "PPGNTransformer",
    "PPGNTransformerConfig",
    "PeriodicDecoder",
    "PeriodicEncoder",
    "ScoreNetworkA",
    "ScoreNetworkX",
    "SiLUMLP",
    "TimeMLP",
    "TokenConvConfig",
    "TokenConvNet",
    "UNet",
    "UNetConfig",
    "causal_block_mask",
    "sinusoidal_embedding",
]
