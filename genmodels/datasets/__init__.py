"""Dataset registry and loaders (lazy imports)."""

from genmodels._lazy import lazy_modules

_MODULES = {
    "registry": "REGISTRY DatasetCard DatasetError FileSpec cache_dir data_dir fetch",
    "graphs": "GRAPH_DATASETS load_graphs load_user_graphs read_user_graphs train_test_split",
    "crystals": "CRYSTAL_DATASETS load_crystals",
    "images": "load_mnist load_cifar10 load_image_folder load_image_set load_images read_idx",
    "toy": "energy_distance ring_mixture",
}
__all__, __getattr__, __dir__ = lazy_modules(__name__, _MODULES)
