"""The shipped MNIST image models (``flow_mnist``, ``boss_mnist``, ``pfgmpp_mnist``): their
``metrics.json`` and sampling them through the command line.

An untrained network scores a classifier FID of about 600 and uniform noise 576
(``benchmarks/results/fid_reference.json``); the thresholds below are a few times what the
shipped models reach on the same number of samples, so they fail on a broken sampler, a
wrong grid or parameters that were not loaded, not on sampling noise.
"""

import json

import jax
import numpy as np
import pytest

from genmodels.cli import main
from genmodels.recipes import load_recipe

# recipe -> NFE of its default sampler (flow: 20 Euler steps; boss_mnist: 6-step BOSS
# grid; PFGM++: EDM Heun with 18 noise levels = 35 network calls)
DEFAULT_NFE = {"flow_mnist": 20, "boss_mnist": 6, "pfgmpp_mnist": 35}


def _shipped(recipe: str) -> dict:
    _, info = load_recipe(recipe)
    assert info.has_pretrained, f"{info.pretrained_dir} is missing"
    return json.loads((info.pretrained_dir / "metrics.json").read_text())


@pytest.mark.parametrize("recipe", sorted(DEFAULT_NFE))
def test_pretrained_metrics_file(recipe):
    """10,000 samples with the recipe's sampler, its NFE, a classifier FID far below an
    untrained network's, and the training budget of the recipe."""
    cfg, _ = load_recipe(recipe)
    shipped = _shipped(recipe)
    assert shipped["num_samples_per_seed"] == 10_000
    assert (shipped["sampler"], shipped["sample_steps"]) == (cfg.sampler, cfg.sample_steps)
    m = {k: v["mean"] for k, v in shipped["metrics"].items()}
    assert m["num_samples"] == 10_000 and m["nfe"] == DEFAULT_NFE[recipe]
    # shipped: 52 (flow, 20 Euler steps), 116 (PFGM++, 35 NFE); untrained about 600
    assert 0.0 < m["fid_classifier"] < 200.0, m
    if recipe in ("flow_mnist", "pfgmpp_mnist"):  # issue #7: both FIDs on 10,000 samples
        assert m["num_inception"] == 10_000 and 0.0 < m["fid"] < 300.0, m
    elif "fid" in m:  # the Inception FID, of the first num_inception samples
        assert m["num_inception"] >= 500 and 0.0 < m["fid"] < 300.0, m
    assert shipped["train"]["steps"] == cfg.train.steps and shipped["train"]["wall_s"] > 0


# (recipe, sampler flags, classifier FID bound on 256 samples): the shipped models measured
# 121 (4 uniform Euler steps), 105 (the 4-step BOSS grid), 77 (straightened, on the 4-step
# grid; 57 on its 6-step grid with 1,000 samples) and 106 (PFGM++, Heun with 5 noise
# levels = 9 NFE) on these samples; noise scores 576
CLI_CASES = [
    ("flow_mnist", ["--sampler", "euler", "--steps", "4"], 250.0),
    ("flow_mnist", ["--sampler", "boss", "--steps", "4"], 220.0),
    ("boss_mnist", [], 160.0),  # its default: the 6-step grid it was straightened for
    ("pfgmpp_mnist", ["--steps", "5"], 220.0),
]
# one command-line case in the default run (the others, 20-50 s each, repeat its path with
# another sampler or model: BOSS grids in test_boss_grid_beats_uniform_euler_at_two_steps,
# PFGM++ sampling in test_image_methods.py)
SLOW_CLI = {1, 2, 3}


@pytest.mark.parametrize(
    "recipe,flags,bound",
    [
        pytest.param(*c, marks=pytest.mark.slow) if i in SLOW_CLI else c
        for i, c in enumerate(CLI_CASES)
    ],
    ids=[f"{r}-{'-'.join(f[1::2]) or 'default'}" for r, f, _ in CLI_CASES],
)
def test_pretrained_samples_through_the_cli(recipe, flags, bound, tmp_path, capsys):
    """``genmodels sample RECIPE --checkpoint pretrained`` then ``genmodels evaluate``:
    digits (a classifier FID far below noise's 576) and the JSON matches the file."""
    from genmodels.metrics.images import fid_classifier

    out = tmp_path / "s.npz"
    argv = ["sample", recipe, "--checkpoint", "pretrained", "--num", "256", "--out", str(out)]
    assert main([*argv, *flags]) == 0
    images = np.load(out)["images"]
    assert images.shape == (256, 28, 28, 1) and images.dtype == np.uint8
    capsys.readouterr()
    off = ["--config.eval-inception", "False"]
    assert main(["evaluate", recipe, "--samples", str(out), *off]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["num_samples"] == 256 and "fid" not in got
    assert got["fid_classifier"] == pytest.approx(fid_classifier(images), rel=1e-6)
    assert got["fid_classifier"] < bound, got


@pytest.mark.slow  # ~35 s; the BOSS solver against an exact flow: tests/models/test_boss.py
def test_boss_grid_beats_uniform_euler_at_two_steps():
    """The shipped flow model at K = 2 from the same noise: Euler on its Bellman-optimal
    grid is closer to the data than on the uniform grid (benchmarks/results/boss.json has
    the whole K = 2..10 comparison). Measured on 512 samples: 329 uniform, 287 BOSS."""
    from genmodels.metrics.images import fid_classifier
    from genmodels.models.run import load_recipe_model
    from genmodels.samplers.boss import find_boss_grids, read_boss_grids

    cfg, info = load_recipe("flow_mnist")
    method, model, _ = load_recipe_model(cfg, info.pretrained_dir)
    grid = read_boss_grids(find_boss_grids(info.pretrained_dir))[2]
    uniform = np.linspace(1.0, 0.0, 3, dtype=np.float32)
    key = jax.random.PRNGKey(0)
    fids = {
        name: fid_classifier(
            method.sample(model, key, 512, sampler="boss", grid=g, batch_size=256, progress=False)
        )
        for name, g in (("uniform", uniform), ("boss", grid))
    }
    assert fids["boss"] < fids["uniform"], fids
