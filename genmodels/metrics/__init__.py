"""Evaluation metrics following the reference evaluations (lazy imports)."""

from genmodels._lazy import lazy_modules

_MODULES = {
    "graphs": (
        "graph_mmd degree_mmd clustering_mmd orbit_mmd spectral_mmd compute_mmd "
        "gaussian_emd gaussian_tv gaussian"
    ),
    "orbits": "orbit_counts",
    "crystals": "generation_metrics reconstruction_metrics structure_validity composition_validity",
    "images": (
        "image_metrics fid fid_classifier feature_stats inception_features "
        "classifier_features reference_stats train_classifier"
    ),
    "frechet": "frechet_distance",
}
__all__, __getattr__, __dir__ = lazy_modules(__name__, _MODULES)
