"""Multi-process training and sampling with ``jax.distributed`` on the loopback address:
2 CPU processes x 2 simulated devices against one process, through the command line
exactly as README "Scaling out" shows it (the launcher replaced by subprocesses)."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from genmodels.models.run import load_recipe_model
from genmodels.recipes import load_recipe
from genmodels.train.distributed import cluster_detected, initialize

MAIN = "import sys; from genmodels.cli import main; sys.exit(main(sys.argv[1:]))"
TRAIN = "--train.steps 4 --train.batch-size 64 --train.log-every 1 --train.ckpt-every 2".split()
SMALL = ["--hidden", "32", "--depth", "2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_"))}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _run(args: list[str], processes: int, devices: int) -> list[str]:
    """``genmodels ARGS`` in ``processes`` processes of ``devices`` devices each."""
    addr = f"127.0.0.1:{_free_port()}"
    dist = ["--coordinator", addr, "--num-processes", str(processes)]
    cmds = [
        [sys.executable, "-c", MAIN, *args, *dist, "--process-id", str(i)] for i in range(processes)
    ]
    procs = [
        subprocess.Popen(c, env=_env(devices), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for c in cmds
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-3000:]
        outs.append(out.decode())
    return outs


def _params(run) -> list[np.ndarray]:
    cfg = load_recipe("toy")[0]
    cfg = cfg.__class__(**{**cfg.__dict__, "hidden": 32, "depth": 2})
    _, model, _ = load_recipe_model(cfg, run, ema=False)
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_train_and_sample_as_one(tmp_path):
    """The one-process runs are in this process (its devices: 1, or CI's 8); the
    two-process ones are subprocesses of 2 devices each."""
    from genmodels.cli import main

    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", "toy", "--workdir", str(one), *TRAIN, *SMALL]) == 0
    _run(["train", "toy", "--workdir", str(two), *TRAIN, *SMALL], 2, 2)
    # one run folder, the same checkpoints, losses and parameters (float rounding aside)
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["2", "4"]
    np.testing.assert_allclose(_losses(two), _losses(one), rtol=1e-5)
    for a, b in zip(_params(two), _params(one)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # the 2-process run resumes in one process
    more = [a if a != "4" else "6" for a in TRAIN]
    assert main(["train", "toy", "--workdir", str(two), *more, *SMALL]) == 0
    assert len(_losses(two)) == 6

    # sampling: --num split over the processes (rounds of 16), one file from process 0
    out1, out2 = tmp_path / "s1.npz", tmp_path / "s2.npz"
    args = ["sample", "toy", "--checkpoint", str(one), "--num", "40", "--batch-size", "16"]
    cfgs = ["--config.hidden", "32", "--config.depth", "2", "--steps", "5"]
    assert main([*args, "--out", str(out1), *cfgs]) == 0
    _run([*args, "--out", str(out2), *cfgs], 2, 2)
    a, b = np.load(out1), np.load(out2)
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        assert a[k].shape[0] == 40
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6)


def test_options_go_together_and_single_process_is_unchanged(monkeypatch):
    with pytest.raises(ValueError, match="go together"):
        initialize(coordinator="127.0.0.1:1")
    with pytest.raises(ValueError, match="not in"):
        initialize("127.0.0.1:1", 2, 2)
    for k in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES", "JOBSET_NAME"):
        monkeypatch.delenv(k, raising=False)
    assert not cluster_detected() and initialize() is False
    assert cluster_detected({"SLURM_NTASKS": "4"}) and not cluster_detected({"SLURM_NTASKS": "1"})
    assert cluster_detected({"TPU_WORKER_HOSTNAMES": "a,b"})
