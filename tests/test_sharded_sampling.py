"""Sampling is sharded over the devices along the batch and gives the single-device samples.

For every image method (rectified flow, PFGM++ with its ODE sampler, EDM with the shared
PC and S4 samplers), the continuous methods on GDSS's graph state (flow matching,
PFGM++) and every masked-diffusion method (images, molecules, crystals, generic graphs): a
batch divisible by the 8 simulated CPU devices is sampled once on the mesh (parameters
replicated, batch split) and once with the device count forced to 1, with the same key.
The sampled array must be split into 8 batch shards, and the samples must agree: exactly
for tokens, up to float32 rounding for continuous states (partitioned reductions, e.g.
the batch-averaged norms of the Langevin corrector, sum in another order).

Needs ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` in the environment of the
test process (set by ``.ci/run``); skipped with fewer devices.
"""

import dataclasses

import jax
import numpy as np
import pytest

NDEV = 8
BATCH = 16  # two examples per device

pytestmark = [
    pytest.mark.devices,
    pytest.mark.skipif(
        jax.device_count() < NDEV,
        reason=f"needs {NDEV} devices, found {jax.device_count()}: run with "
        f"XLA_FLAGS=--xla_force_host_platform_device_count={NDEV} (as .ci/run does)",
    ),
]


def _unet():
    from genmodels.nets.unet import UNetConfig

    return UNetConfig(
        in_channels=1,
        out_channels=1,
        img_resolution=8,
        model_channels=8,
        channel_mult=(1,),
        num_blocks=1,
        attn_resolutions=(),
        dropout=0.0,
    )


def flow(sampler: str):
    from genmodels.models.flow import FlowImageConfig

    return FlowImageConfig(net=_unet(), sampler=sampler).build(), {"steps": 2}


def pfgmpp(sampler: str, D: float):
    from genmodels.models.pfgmpp import PFGMPPImageConfig

    return PFGMPPImageConfig(net=_unet(), D=D, sampler=sampler).build(), {"steps": 3}


def mdm_images(sampler: str):
    from genmodels.models.mdm import MDMImageConfig
    from genmodels.nets.conv import TokenConvConfig

    net = TokenConvConfig(channels=8, blocks=1, dilations=(1,))
    cfg = MDMImageConfig(height=3, width=3, net=net, sampler=sampler, sample_steps=4)
    return cfg.build(), {}


def mdm_molecules(sampler: str):
    from genmodels.models.mdm import MDMMolConfig
    from genmodels.nets.graph_transformer import GraphTransformerConfig

    net = GraphTransformerConfig(dx=8, de=4, heads=2, layers=1, ffn_x=8, ffn_e=4)
    cfg = MDMMolConfig(dataset="qm9", net=net, sampler=sampler, sample_steps=4)
    return cfg.build(), {"num_atoms": 4}  # fixed counts: no data set needed


def mdm_crystals(sampler: str):
    from genmodels.models.mdm_crystals import MDMCrystalConfig, SetTransformerConfig

    net = SetTransformerConfig(dim=8, heads=2, layers=1, ffn=8)
    cfg = MDMCrystalConfig(
        elements=("Li", "O", "Ti", "Sr"), net=net, sampler=sampler, sample_steps=4
    )
    method = cfg.build()
    method.task.__dict__["train_counts"] = np.array([1, 2, 3, 5])  # in place of a training split
    return method, {}


def _tiny_gdss_net():
    from genmodels.nets.graph import GDSS_NET_CONFIGS

    return dataclasses.replace(
        GDSS_NET_CONFIGS["community_small"], depth=1, nhid=8, num_layers=2, adim=8, c_hid=2,
        num_linears=1,
    )  # fmt: skip


def graph_continuous(kind: str, sampler: str):
    """community_small (80 training graphs: node counts for the contexts)."""
    from genmodels.models.graph_continuous import GraphFlowConfig, GraphPFGMPPConfig

    cls = GraphFlowConfig if kind == "flow" else GraphPFGMPPConfig
    cfg = cls(dataset="community_small", net=_tiny_gdss_net(), sampler=sampler)
    return cfg.build(), {"steps": 3}


def mdm_graphs(sampler: str):
    from genmodels.models.mdm_graphs import MDMGraphConfig
    from genmodels.nets.graph_transformer import GraphTransformerConfig

    net = GraphTransformerConfig(dx=8, de=4, heads=2, layers=1, ffn_x=8, ffn_e=4)
    cfg = MDMGraphConfig(dataset="community_small", net=net, sampler=sampler, sample_steps=4)
    return cfg.build(), {}


CASES = {
    "flow-euler": lambda: flow("euler"),
    "pfgmpp-heun": lambda: pfgmpp("heun", 128.0),
    "edm-pc": lambda: pfgmpp("pc", float("inf")),
    "edm-s4": lambda: pfgmpp("s4", float("inf")),
    "mdm_images-fhs": lambda: mdm_images("fhs"),
    "mdm_images-ancestral": lambda: mdm_images("ancestral"),
    "mdm_molecules-fhs": lambda: mdm_molecules("fhs"),
    "mdm_crystals-ancestral": lambda: mdm_crystals("ancestral"),
    "flow_graphs-euler": lambda: graph_continuous("flow", "euler"),
    "pfgmpp_graphs-heun": lambda: graph_continuous("pfgmpp", "heun"),
    "mdm_graphs-ancestral": lambda: mdm_graphs("ancestral"),
}
# Two compiles of 4-10 CPU-seconds per case. The default run keeps one case per code path
# this check was added with (ImageMethod.sample_states, through the EDM PC sampler; the
# MDM image sampler) and one masked-diffusion domain that was sharded before; the others
# repeat one of these paths and run with ``-m slow``.
SLOW = {
    "flow-euler",
    "pfgmpp-heun",
    "edm-s4",
    "mdm_images-ancestral",
    "mdm_molecules-fhs",
    "pfgmpp_graphs-heun",
}


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in CASES]
)
def test_sharded_samples_equal_single_device_samples(case, monkeypatch):
    method, kwargs = CASES[case]()
    model = method.init_model(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(7)

    def run():
        out = method.sample_states(model, key, BATCH, **kwargs)
        return out[0]  # the state ((state, info) or (state, ctx, info))

    sharded = run()
    for name, leaf in sharded.items():
        assert len(leaf.sharding.device_set) == NDEV, (name, leaf.sharding)
        shards = leaf.addressable_shards
        assert len(shards) == NDEV and {s.data.shape[0] for s in shards} == {BATCH // NDEV}

    monkeypatch.setattr(jax, "local_device_count", lambda *a: 1)  # the runner's mesh
    # recompile without the mesh (every method samples through its own Runner)
    from genmodels.models.runner import Runner

    method.runner = Runner()
    single = run()
    assert sorted(single) == sorted(sharded)
    for name, leaf in single.items():
        assert len(leaf.sharding.device_set) == 1
        a, b = np.asarray(sharded[name]), np.asarray(leaf)
        assert a.shape[0] == BATCH
        if np.issubdtype(a.dtype, np.integer):
            np.testing.assert_array_equal(a, b)
        else:
            assert np.isfinite(a).all()
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
