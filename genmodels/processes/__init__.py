"""Forward processes and their training losses, one concept per file.

Each process acts on one state leaf (see :mod:`genmodels.processes.base`); a model maps
leaf names to processes, so GDSS can put a VP SDE on ``x`` and a VE SDE on ``adj``.
"""

from genmodels.processes.base import (
    Process,
    corrupt_state,
    loss_state,
    prior_state,
    uniform_times,
)
from genmodels.processes.discrete import DiscreteDiffusion
from genmodels.processes.flow import LinearFlow, ot_cost_matrix, ot_pair, ot_permutation
from genmodels.processes.levels import NoiseLevels
from genmodels.processes.masked import CosineSchedule, LinearSchedule, MaskedDiffusion
from genmodels.processes.pfgmpp import (
    PFGMPP,
    exact_denoiser,
    perturb,
    radius_cdf,
    radius_density,
)
from genmodels.processes.sde import VESDE, VPSDE, dsm_loss, subVPSDE

__all__ = [
    "PFGMPP",
    "VESDE",
    "VPSDE",
    "CosineSchedule",
    "DiscreteDiffusion",
    "LinearFlow",
    "LinearSchedule",
    "MaskedDiffusion",
    "NoiseLevels",
    "Process",
    "corrupt_state",
    "dsm_loss",
    "exact_denoiser",
    "loss_state",
    "ot_cost_matrix",
    "ot_pair",
    "ot_permutation",
    "perturb",
    "prior_state",
    "radius_cdf",
    "radius_density",
    "subVPSDE",
    "uniform_times",
]
