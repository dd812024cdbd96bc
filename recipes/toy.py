"""Flow matching on a 2-D ring of 8 Gaussians with a small MLP (about a minute on CPU)."""

from genmodels.models.toy import ToyConfig


def config() -> ToyConfig:
    return ToyConfig()
