"""Moved: the sampling mesh helpers are :mod:`genmodels.models.runner`'s, the image data
kind is :class:`genmodels.models.tasks.images.ImageTask`."""

from genmodels.models.runner import batch_sharded_constrain, sampling_mesh

__all__ = ["batch_sharded_constrain", "sampling_mesh"]
