"""Evaluation metrics following the reference evaluations (lazy imports)."""

from genmodels._lazy import lazy_exports

_TABLE = {
    "graph_mmd": "graphs",
    "degree_mmd": "graphs",
    "clustering_mmd": "graphs",
    "orbit_mmd": "graphs",
    "spectral_mmd": "graphs",
    "compute_mmd": "graphs",
    "gaussian_emd": "graphs",
    "gaussian_tv": "graphs",
    "gaussian": "graphs",
    "orbit_counts": "orbits",
    "generation_metrics": "crystals",
    "reconstruction_metrics": "crystals",
    "structure_validity": "crystals",
    "composition_validity": "crystals",
    "image_metrics": "images",
    "fid": "images",
    "fid_classifier": "images",
    "frechet_distance": "frechet",
    "feature_stats": "images",
    "inception_features": "images",
    "classifier_features": "images",
    "reference_stats": "images",
    "train_classifier": "images",
}
__all__ = sorted(_TABLE)
__getattr__, __dir__ = lazy_exports(__name__, _TABLE)
