"""Methods composed of a task, a network and one process per leaf; the sampling runner and
recipe-level actions (lazy imports)."""

from genmodels._lazy import lazy_modules

_MODULES = {
    "base": "Method",
    "toy": "ToyConfig ToyNet",
    "cdvae": "CDVAE CDVAEConfig",
    "gdss": "GDSS GDSSConfig GDSSMolConfig SDESpec",
    "mdm": "MDMImageConfig MDMImages MDMMolConfig MDMMolecules",
    "mdm_crystals": "MDMCrystalConfig MDMCrystals",
    "mdm_graphs": "MDMGraphConfig MDMGraphs",
    "flow": "FlowImageConfig FlowMethod GraphFlowConfig",
    "pfgmpp": "PFGMPPImageConfig PFGMPPMethod GraphPFGMPPConfig",
    "pard": "Pard PardConfig",
    "boss": "BossStraighten BossStraightenConfig",
    "runner": "Runner resolve_sampler sampler_names",
    "run": "train_recipe sample_recipe load_recipe_model load_pretrained export_recipe",
}
__all__, __getattr__, __dir__ = lazy_modules(__name__, _MODULES)
