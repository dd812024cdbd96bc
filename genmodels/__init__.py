"""genmodels: one JAX codebase for score SDEs, flows, PFGM++ and masked diffusion over
graphs, molecules, crystals and images.

Subpackages: ``core`` (state pytrees, masks, grids), ``processes`` (forward processes and
losses), ``samplers`` (how to integrate them), ``nets``, ``domains``, ``models``,
``datasets``, ``metrics``, ``train`` and the ``genmodels`` command (``cli``).
"""

__version__ = "0.1.0"
