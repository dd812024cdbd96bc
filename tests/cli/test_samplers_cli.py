"""``genmodels samplers`` lists a recipe's samplers from the registry, ``--sampler`` accepts
exactly those, and the registry's probability-flow ODE samples pretrained models of three
methods on two domains through the one registry entry."""

import pytest

from genmodels.cli import main
from genmodels.domains.graphs import read_graph6
from genmodels.samplers.registry import REGISTRY


@pytest.mark.parametrize(
    "recipe, expected",
    [
        (
            "gdss_qm9",
            {"reverse_langevin", "euler", "euler_langevin", "reverse", "s4", "ode", "fast"},
        ),
        ("flow_mnist", {"euler", "heun", "boss", "ode"}),
        ("mdm_qm9", {"fhs", "ancestral"}),
    ],
)
def test_samplers_lists_the_registry_entries_of_the_recipe(recipe, expected, capsys):
    assert main(["samplers", recipe]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines()[1:-1]}
    assert listed == expected
    default = next(line for line in out.splitlines() if " default " in line).split()[0]
    for name in expected - {"fast"}:
        assert REGISTRY[name].description.split(":")[0] in out
    assert default in expected


@pytest.mark.parametrize("steps, want", [([], ("s4", 200)), (["--steps", "50"], ("s4", 50))])
def test_sampler_fast_is_the_recipes_few_step_setting(steps, want, tmp_path, monkeypatch):
    """``--sampler fast`` runs the config's ``fast`` (sampler, steps); ``--steps`` wins."""
    import genmodels.models.run as run

    seen = {}
    monkeypatch.setattr(run, "sample_recipe", lambda cfg, ckpt, **kw: seen.update(kw) or "x")
    out = str(tmp_path / "g.g6")
    args = ["sample", "gdss_community_small", "--checkpoint", "pretrained", "--num", "4"]
    assert main([*args, "--out", out, "--sampler", "fast", *steps]) == 0
    assert (seen["sampler"], seen["steps"]) == want


def test_sample_refuses_a_sampler_the_recipe_cannot_use(tmp_path, capsys):
    out = tmp_path / "x.g6"
    args = ["sample", "gdss_community_small", "--sampler", "fhs", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no sampler 'fhs'" in err and "euler_langevin" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "recipe, suffix",
    [("gdss_community_small", ".g6"), ("flow_community_small", ".g6"), ("pfgmpp_mnist", ".npz")],
)
def test_ode_sampler_works_for_every_continuous_method(recipe, suffix, tmp_path):
    out = tmp_path / f"s{suffix}"
    argv = ["sample", recipe, "--checkpoint", "pretrained", "--sampler", "ode"]
    assert main([*argv, "--num", "4", "--steps", "6", "--out", str(out)]) == 0
    assert out.exists()
    if suffix == ".g6":
        graphs = read_graph6(out)
        assert len(graphs) == 4 and all(g is not None for g in graphs)
    else:
        import numpy as np

        images = np.load(out)["images"]
        assert images.shape == (4, 28, 28, 1) and images.dtype == np.uint8
