"""``genmodels train / sample / evaluate RECIPE --dataset PNG_FOLDER``: a user's folder of
28 x 28 gray-scale PNGs (40 MNIST test digits), a tiny network for 2 steps, 4 samples,
and the metrics against the folder's own test split. Masked diffusion (4 grey levels)
runs in the default suite; flow matching with its UNet (a longer compile) and the fast
classifier FID under ``-m slow``."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from genmodels.cli import main
from genmodels.datasets.images import load_mnist
from genmodels.datasets.user import split_indices
from genmodels.domains.images import read_images_npz
from genmodels.metrics import images as M

FLOW_TINY = "--net.model-channels 8 --net.channel-mult 1 --net.num-blocks 1".split()
FLOW_TINY += ["--net.attn-resolutions"]
MDM_TINY = "--net.channels 8 --net.blocks 1 --net.dilations 1".split()


def check_mdm(metrics, samples, test):
    """Level histograms over 4 grey levels (``floor(x 4 / 256)``), computed here."""
    hx, hr = (np.bincount((x // 64).ravel(), minlength=4) / x.size for x in (samples, test))
    assert metrics["level_tv"] == pytest.approx(0.5 * np.abs(hx - hr).sum(), rel=1e-9)


def check_flow(metrics, samples, test):
    """The fast classifier FID against the test split (no Inception weights here)."""
    assert "fid" not in metrics
    ref = M.feature_stats(M.classifier_features(test))
    want = M.frechet_distance(*M.feature_stats(M.classifier_features(samples)), *ref)
    assert np.isfinite(metrics["fid_classifier"])
    assert metrics["fid_classifier"] == pytest.approx(want, rel=1e-4)


RECIPES = [
    pytest.param("mdm_mnist", MDM_TINY, [], [], check_mdm, id="mdm"),
    # compiling the UNet, its training step and sampler: ~35 s on 2 cores
    pytest.param(
        "flow_mnist",
        FLOW_TINY,
        ["--steps", "2"],
        ["--config.eval-inception", "False"],
        check_flow,
        id="flow",
        marks=pytest.mark.slow,
    ),
]


@pytest.fixture()
def digits(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))
    x = load_mnist("test")[0][:40]  # [40, 28, 28]
    folder = tmp_path / "digits"
    folder.mkdir()
    for i, a in enumerate(x):
        Image.fromarray(a).save(folder / f"{i:02d}.png")
    return folder, x


@pytest.mark.parametrize("recipe, tiny, sampling, evaluating, check", RECIPES)
def test_train_sample_evaluate_on_a_png_folder(
    recipe, tiny, sampling, evaluating, check, digits, tmp_path, capsys
):
    folder, x = digits
    work, out = tmp_path / "run", tmp_path / "s.npz"
    args = ["train", recipe, "--dataset", str(folder), "--test-fraction", "0.25"]
    args += ["--workdir", str(work), "--train.steps", "2", "--train.batch-size", "8"]
    assert main([*args, "--train.progress", "False", *tiny]) == 0
    assert (work / "checkpoints" / "2").is_dir()
    shutil.rmtree(folder)  # the run folder keeps its own copy (run/data/digits)

    # sample and evaluate take the folder and its split from the checkpoint
    tiny = [a.replace("--", "--config.", 1) for a in tiny]
    args = ["sample", recipe, "--checkpoint", str(work), "--num", "4", "--out", str(out)]
    assert main([*args, *sampling, *tiny]) == 0
    samples = read_images_npz(out)
    assert samples.shape == (4, 28, 28, 1) and samples.dtype == np.uint8
    capsys.readouterr()
    args = ["evaluate", recipe, "--samples", str(out), "--checkpoint", str(work)]
    assert main([*args, *evaluating]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["num_samples"] == 4

    # the reference is the folder's own test split: 10 of the 40 digits
    test = x[split_indices(40, 0.25, 0)[1], ..., None]
    assert len(test) == 10
    check(metrics, samples, test)


def test_images_of_another_size_say_which_options_to_pass(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))
    np.savez(tmp_path / "rgb.npz", images=np.zeros((6, 32, 32, 3), np.uint8))
    args = ["train", "pfgmpp_mnist", "--dataset", str(tmp_path / "rgb.npz")]
    assert main([*args, "--workdir", str(tmp_path / "w"), "--train.steps", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "are 32 x 32 x 3" in err
    assert "--net.img-resolution 32 --net.in-channels 3 --net.out-channels 3" in err
