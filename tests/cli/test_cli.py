"""The ``genmodels`` command: listing, errors, help, and the toy recipe end to end."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genmodels.cli import main
from genmodels.datasets.toy import energy_distance


def test_console_script_lists_toy():
    # the script installed next to this interpreter (the venv), else one on PATH
    local = Path(sys.executable).parent / "genmodels"
    exe = str(local) if local.exists() else shutil.which("genmodels")
    assert exe, "the genmodels console script is not installed"
    out = subprocess.run([exe, "recipes"], capture_output=True, text=True, check=True).stdout
    assert any(line.split()[0] == "toy" for line in out.splitlines())


@pytest.mark.parametrize("cmd", ["train", "sample", "evaluate", "export"])
def test_unknown_recipe_lists_valid_choices(cmd, capsys):
    assert main([cmd, "no_such_recipe"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'no_such_recipe'" in err and "toy" in err


def test_unknown_command(capsys):
    assert main(["fly"]) == 2
    assert "recipes, train, sample, evaluate, export" in capsys.readouterr().err


def test_bad_override_is_a_clear_error(capsys):
    assert main(["train", "toy", "--train.stepz", "5"]) == 2
    err = capsys.readouterr().err
    assert "--train.stepz" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("cmd", ["train", "sample", "evaluate"])
def test_help_lists_overrides(cmd, capsys):
    assert main([cmd, "toy", "--help"]) == 0
    text = capsys.readouterr().out
    prefix = "" if cmd == "train" else "config."
    assert f"--{prefix}hidden" in text
    # training fields only where they can matter
    assert ("--train.steps" in text) == (cmd == "train")


def test_toy_trains_samples_and_matches_the_data(tmp_path, capsys):
    wd = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "toy",
                "--workdir",
                str(wd),
                "--train.steps",
                "2000",
                "--train.progress",
                "False",
            ]
        )
        == 0
    )
    out = tmp_path / "s.npz"
    assert main(["sample", "toy", "--checkpoint", str(wd), "--num", "1000", "--out", str(out)]) == 0
    assert out.with_suffix(".png").exists()
    with np.load(out) as f:
        x = f["samples"]
    assert x.shape == (1000, 2) and x.dtype == np.float32
    capsys.readouterr()
    assert main(["evaluate", "toy", "--samples", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # two-sample statistic vs a held-out draw of the data: within a few times the
    # noise floor of two independent data draws of the same sizes...
    assert metrics["energy_distance"] < 3 * metrics["energy_distance_null"] + 2e-3, metrics
    # ...while a wrong distribution (the N(0, I) prior) is far above it
    from genmodels.models.toy import ToyConfig

    method = ToyConfig().build()
    wrong = np.random.default_rng(0).normal(size=(1000, 2))
    assert (
        energy_distance(wrong, method.task.reference(2000)) > 20 * metrics["energy_distance_null"]
    )
    assert metrics["mode_tv"] < 0.1 and metrics["far_fraction"] < 0.1, (
        metrics
    )  # data: 3e-4; N(0, I): ~0.9

    # export keeps only the parameters sampling uses: same samples, smaller folder
    from genmodels.train.export import folder_size

    exp = tmp_path / "exported"
    assert main(["export", "toy", "--checkpoint", str(wd), "--out", str(exp)]) == 0
    out2 = tmp_path / "s2.npz"
    assert (
        main(["sample", "toy", "--checkpoint", str(exp), "--num", "1000", "--out", str(out2)]) == 0
    )
    with np.load(out2) as f:
        np.testing.assert_array_equal(f["samples"], x)
    assert folder_size(exp) < folder_size(wd / "checkpoints") / 2
    capsys.readouterr()
    assert main(["export", "toy", "--checkpoint", str(wd), "--out", str(exp)]) == 2
    assert "exists" in capsys.readouterr().err


def test_evaluate_rejects_bad_sample_file(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, samples=np.zeros((10, 3)))
    assert main(["evaluate", "toy", "--samples", str(bad)]) == 1
    assert "(10, 3), expected float [N, 2]" in capsys.readouterr().err
    assert main(["evaluate", "toy", "--samples", str(tmp_path / "missing.npz")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_sample_without_pretrained_says_how_to_train(capsys):
    assert main(["sample", "toy", "--checkpoint", "pretrained", "--num", "10"]) == 1
    assert "ships no pretrained model" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["smi", "csv"])
def test_evaluate_reads_a_users_smiles_file(fmt, tmp_path, capsys):
    """``genmodels evaluate gdss_qm9`` scores SMILES that did not come from ``sample``."""
    from genmodels.metrics.molecules import canonical_smiles
    from genmodels.recipes import load_recipe

    smiles = ["CCO", "OCC", "C1=CC=CC=C1", "not_a_smiles", ""]
    path = tmp_path / f"theirs.{fmt}"
    if fmt == "smi":
        path.write_text("smiles\n" + "".join(f"{s} mol{i}\n" for i, s in enumerate(smiles)))
        path.write_text(path.read_text().replace(" mol4", ""))  # the empty line stays empty
    else:
        path.write_text("id,smiles\n" + "".join(f"{i},{s}\n" for i, s in enumerate(smiles)))
    capsys.readouterr()
    argv = ["evaluate", "gdss_qm9", "--samples", str(path)]
    assert main([*argv, "--config.eval-fcd", "False", "--config.eval-nspdk", "False"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["num_samples"] == 5
    assert got["validity"] == pytest.approx(3 / 5)
    assert got["uniqueness"] == pytest.approx(2 / 3)  # CCO and OCC are one molecule
    train = set(load_recipe("gdss_qm9")[0].build().task.splits[0])
    uniq = {canonical_smiles("CCO"), canonical_smiles("c1ccccc1")}
    assert got["novelty"] == pytest.approx(len(uniq - train) / 2)
    assert "validity_wo_correction" not in got  # no sidecar: nothing says it is raw


def test_sample_takes_the_trained_config_from_the_checkpoint(tmp_path, capsys):
    """A run trained with ``--hidden 32`` samples with only ``--checkpoint``: the network
    sizes (and a user's data) come from the config stored in the checkpoint."""
    wd = tmp_path / "run"
    train = ["train", "toy", "--workdir", str(wd), "--hidden", "32", "--train.steps", "5"]
    assert main([*train, "--train.no-progress"]) == 0
    out = tmp_path / "s.npz"
    assert main(["sample", "toy", "--checkpoint", str(wd), "--num", "6", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["samples"].shape == (6, 2)
    # an explicit option still wins: another width does not fit the stored parameters
    capsys.readouterr()
    bad = ["sample", "toy", "--checkpoint", str(wd), "--num", "6", "--config.hidden", "16"]
    assert main([*bad, "--out", str(out)]) == 1
    assert "architecture differs" in capsys.readouterr().err
