"""Dataset registry and loaders (lazy imports)."""

from genmodels._lazy import lazy_exports

_TABLE = {
    "REGISTRY": "registry",
    "DatasetCard": "registry",
    "DatasetError": "registry",
    "FileSpec": "registry",
    "cache_dir": "registry",
    "data_dir": "registry",
    "fetch": "registry",
    "GRAPH_DATASETS": "graphs",
    "load_graphs": "graphs",
    "train_test_split": "graphs",
    "CRYSTAL_DATASETS": "crystals",
    "load_crystals": "crystals",
    "load_mnist": "images",
    "load_cifar10": "images",
    "load_image_folder": "images",
    "load_images": "images",
    "read_idx": "images",
    "energy_distance": "toy",
    "ring_mixture": "toy",
}
__all__ = sorted(_TABLE)
__getattr__, __dir__ = lazy_exports(__name__, _TABLE)
