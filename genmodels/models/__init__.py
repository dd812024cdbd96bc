"""One file per method, composing processes, samplers, networks and domains (lazy)."""

from genmodels._lazy import lazy_exports

_TABLE = {
    "Method": "base",
    "ToyConfig": "toy",
    "ToyMethod": "toy",
    "CDVAE": "cdvae",
    "CDVAEConfig": "cdvae",
    "GDSS": "gdss",
    "GDSSConfig": "gdss",
    "MDMImageConfig": "mdm",
    "MDMImages": "mdm",
    "MDMMolConfig": "mdm",
    "MDMMolecules": "mdm",
    "MDMCrystalConfig": "mdm_crystals",
    "MDMCrystals": "mdm_crystals",
    "SDESpec": "gdss",
    "FlowImageConfig": "flow",
    "FlowMethod": "flow",
    "GraphFlowConfig": "flow",
    "PFGMPPImageConfig": "pfgmpp",
    "PFGMPPMethod": "pfgmpp",
    "GraphPFGMPPConfig": "pfgmpp",
    "MDMGraphConfig": "mdm_graphs",
    "MDMGraphs": "mdm_graphs",
    "PardConfig": "pard",
    "Pard": "pard",
    "BossStraighten": "boss",
    "BossStraightenConfig": "boss",
    "boss_grids_command": "boss",
    "train_recipe": "run",
    "sample_recipe": "run",
    "load_recipe_model": "run",
}
__all__ = sorted(_TABLE)
__getattr__, __dir__ = lazy_exports(__name__, _TABLE)
