"""Tasks: one per data kind, owning data, size priors, sample files and evaluation."""

from genmodels.models.tasks.base import Task, array_loader, concat_lists, reference_split

__all__ = ["Task", "array_loader", "concat_lists", "reference_split"]
