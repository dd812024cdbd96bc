"""How to integrate the processes: pure, jit-compatible samplers shared by every domain.

Every sampler is ``sampler(field_fn, processes, ctx, key, *, shapes, ...) -> (state, info)``
with ``info["nfe"]`` the number of network evaluations; loops are ``lax.scan``/``fori_loop``
and the domain's ``constrain`` hook runs after every step.
"""

from genmodels.samplers.blockwise import blockwise_sample, discrete_denoise
from genmodels.samplers.boss import (
    BossGrid,
    cost_matrix,
    optimal_grid,
    path_cost,
    reference_trajectories,
    straightening_batch,
    straightening_loss,
    straightening_pairs,
)
from genmodels.samplers.guidance import (
    Conditioning,
    Guidance,
    classifier_free,
    gradient_guided,
    guided_model,
)
from genmodels.samplers.langevin import annealed_langevin_sample
from genmodels.samplers.masked import ancestral_sample, first_hitting_sample, masked_sample
from genmodels.samplers.ode import (
    edm_euler_sample,
    euler_sample,
    heun_sample,
    probability_flow_sample,
)
from genmodels.samplers.pc import (
    EulerMaruyama,
    LangevinCorrector,
    ReverseDiffusion,
    pc_sample,
    s4_sample,
)

__all__ = [
    "BossGrid",
    "Conditioning",
    "EulerMaruyama",
    "Guidance",
    "LangevinCorrector",
    "ReverseDiffusion",
    "ancestral_sample",
    "annealed_langevin_sample",
    "blockwise_sample",
    "classifier_free",
    "cost_matrix",
    "discrete_denoise",
    "edm_euler_sample",
    "euler_sample",
    "first_hitting_sample",
    "gradient_guided",
    "guided_model",
    "heun_sample",
    "masked_sample",
    "optimal_grid",
    "path_cost",
    "pc_sample",
    "probability_flow_sample",
    "reference_trajectories",
    "s4_sample",
    "straightening_batch",
    "straightening_loss",
    "straightening_pairs",
]
