"""Domain adapters between real objects and padded state arrays (lazy imports)."""

from genmodels._lazy import lazy_modules

_MODULES = {
    "graphs": (
        "GraphDomain quantize_adj read_graph6 write_graph6 symmetrize_upper node_masks_from_counts"
    ),
    "crystals": (
        "CrystalDomain lattice_params_to_matrix radius_graph_pbc read_cif write_cif write_extxyz"
    ),
    "images": "read_images_npz write_images_npz image_grid",
}
__all__, __getattr__, __dir__ = lazy_modules(__name__, _MODULES)
