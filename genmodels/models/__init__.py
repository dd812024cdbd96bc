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
    "FlowImages": "flow",
    "PFGMPPImageConfig": "pfgmpp",
    "PFGMPPImages": "pfgmpp",
    "edm_sde_sample": "pfgmpp",
    "edm_score_fn": "pfgmpp",
    "edm_ve_sde": "pfgmpp",
    "GraphPFGMPPConfig": "graph_continuous",
    "GraphPFGMPP": "graph_continuous",
    "GraphFlowConfig": "graph_continuous",
    "GraphFlow": "graph_continuous",
    "corrupt_graph": "graph_continuous",
    "PardConfig": "pard",
    "PardGraphs": "pard",
    "PardMolecules": "pard",
    "BossStraighten": "boss",
    "BossStraightenConfig": "boss",
    "compute_boss_grids": "boss",
    "train_recipe": "run",
    "sample_recipe": "run",
    "load_recipe_model": "run",
}
__all__ = sorted(_TABLE)
__getattr__, __dir__ = lazy_exports(__name__, _TABLE)
