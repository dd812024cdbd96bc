"""Domain adapters between real objects and padded state arrays (lazy imports)."""

from genmodels._lazy import lazy_exports

_TABLE = {
    "GraphDomain": "graphs",
    "quantize_adj": "graphs",
    "read_graph6": "graphs",
    "write_graph6": "graphs",
    "symmetrize_upper": "graphs",
    "node_masks_from_counts": "graphs",
    "CrystalDomain": "crystals",
    "lattice_params_to_matrix": "crystals",
    "radius_graph_pbc": "crystals",
    "read_cif": "crystals",
    "write_cif": "crystals",
    "write_extxyz": "crystals",
    "read_images_npz": "images",
    "write_images_npz": "images",
    "image_grid": "images",
}
__all__ = sorted(_TABLE)
__getattr__, __dir__ = lazy_exports(__name__, _TABLE)
