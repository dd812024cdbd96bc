"""CDVAE with flow matching on the torus for the coordinates, perov_5 (CPU, ~15 min).

Method: :class:`genmodels.models.cdvae.CDVAE` with ``coord_process = "flow"`` (module
docstring, "Flow matching on the coordinates"). The recipe is ``pfgmpp_perov5`` (same
networks, data, loss weights, optimizer, budget) with the coordinate process changed:

- Path: per atom the geodesic of the flat torus from the crystal's fractional
  coordinates (``t = 0``) to uniform ones (``t = 1``), ``f_t = wrap(f_0 + t delta)``,
  ``delta = wrap_centred(f_1 - f_0)``, one ``t ~ U(0, 1)`` per crystal, as FlowMM (Miller
  et al., ICML 2024) treats fractional coordinates; the decoder reads ``t`` as an extra
  latent entry and regresses the Cartesian velocity ``delta L`` (flow matching, Lipman
  et al., ICLR 2023), loss ``1/2 ||d - delta L||^2`` per atom, weighted 10 as CDVAE's
  coordinate loss.
- Sampling: Heun on 50 uniform steps from ``t = 1`` (uniform fractional coordinates,
  the flow's exact prior) to 0 with a final Euler step, 99 decoder calls per batch (the
  NFE of ``pfgmpp_perov5``'s default), wrapped into the cell after every step; atom
  types set to the decoder's argmax after every step as CDVAE does. ``--sampler euler``
  first-order steps; ``--steps K`` the number of steps.
- Length: 2,500 steps at batch 32 with teacher forcing for epochs 0-10, as
  ``pfgmpp_perov5``.

Departures from FlowMM: the lattice comes from CDVAE's head (FlowMM also flows the
lattice), atom types keep CDVAE's noise and argmax updates (FlowMM flows them too), and
the velocities are not made mean-free (FlowMM removes the mean translation).
"""

import dataclasses
import math

from genmodels.models.cdvae import CDVAEConfig
from genmodels.recipes import load_recipe


def config() -> CDVAEConfig:
    base, _ = load_recipe("pfgmpp_perov5")
    return dataclasses.replace(base, coord_D=math.inf, coord_process="flow", sampler="heun")
