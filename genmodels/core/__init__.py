"""State pytrees, masks, time grids, PRNG helpers and closed-form test distributions."""

from genmodels.core.grids import edm_sigma_grid, geometric_levels, uniform_grid
from genmodels.core.masks import apply_masks, get_mask, graph_masks, masked_mean
from genmodels.core.mixture import GaussianMixture
from genmodels.core.partial_order import block_partition, partition_batch
from genmodels.core.random import split_like
from genmodels.core.types import (
    Array,
    ConstrainFn,
    Context,
    FieldFn,
    State,
    identity_constrain,
)

__all__ = [
    "Array",
    "ConstrainFn",
    "Context",
    "FieldFn",
    "GaussianMixture",
    "State",
    "apply_masks",
    "block_partition",
    "edm_sigma_grid",
    "geometric_levels",
    "get_mask",
    "graph_masks",
    "identity_constrain",
    "masked_mean",
    "partition_batch",
    "split_like",
    "uniform_grid",
]
