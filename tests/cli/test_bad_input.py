"""The command line under bad input (issue #22): one clear line, the right exit code.

Each row runs ``genmodels ARGS`` through the entry point (``genmodels.cli:main``, the
function the console script calls; rows marked ``proc`` run the installed script in a
subprocess) and checks the exit code, that stderr holds no traceback, and that the
message names the offending thing. No row trains or samples more than a few items.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from genmodels.cli import main

REPO = Path(__file__).resolve().parents[2]
PRETRAINED = REPO / "recipes" / "pretrained"


def _exe() -> str:
    local = Path(sys.executable).parent / "genmodels"
    return str(local) if local.exists() else shutil.which("genmodels")


@dataclass(frozen=True)
class Row:
    """``genmodels ARGS`` (``{tmp}`` is the test's folder) after ``setup(tmp)``."""

    id: str
    args: str
    code: int
    needles: tuple[str, ...]
    setup: Callable[[Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    proc: bool = False


def _write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())

    return setup


def _object_npz(tmp: Path) -> None:
    np.savez(tmp / "obj.npz", samples=np.array([{"a": 1}, None], dtype=object))


def _truncated_checkpoint(tmp: Path) -> None:
    dest = tmp / "ckpt"
    shutil.copytree(PRETRAINED / "gdss_community_small", dest)
    for p in (dest / "checkpoints").rglob("d/*"):
        p.write_bytes(p.read_bytes()[:10])


def _empty_dir(tmp: Path) -> None:
    (tmp / "empty").mkdir()


def _file_as_folder(tmp: Path) -> None:
    (tmp / "afile").write_text("x")


ROWS = [
    # --- usage errors: exit 2, before any model is built or sampled
    Row("unknown command", "fly", 2, ("unknown command 'fly'", "sample")),
    Row("unknown recipe", "sample no_such_recipe", 2, ("unknown recipe 'no_such_recipe'", "toy")),
    Row("unknown option", "sample toy --bogus 3", 2, ("--bogus", "--help")),
    Row("not a number", "sample toy --num abc", 2, ("--num", "abc")),
    Row("num zero", "sample toy --num 0", 2, ("--num", "at least 1")),
    Row("num negative", "sample gdss_qm9 --num -5", 2, ("--num", "-5")),
    Row("bare bool flag parses", "sample gdss_qm9 --no-correction --num 0", 2, ("--num",)),
    Row("bool flag with a value", "sample gdss_qm9 --no-correction True --num 0", 2, ("--num",)),
    Row("correction on a non-molecule recipe", "sample toy --no-correction", 2, ("molecule",)),
    Row("bad sampler", "sample toy --sampler nope", 2, ("'nope'", "genmodels samplers toy")),
    Row("bad precision", "sample toy --precision float16", 2, ("float16", "float64")),
    Row("steps zero", "sample toy --steps 0", 2, ("--steps",)),
    Row("wrong out suffix", "sample flow_mnist --out {tmp}/t.smi", 2, ("t.smi", ".npz")),
    Row(
        "out folder not writable",
        "sample toy --out {tmp}/afile/sub/s.npz",
        2,
        ("afile", "--out"),
        _file_as_folder,
    ),
    Row("out is a folder", "sample toy --out {tmp}", 2, ("folder",)),
    Row("split", "evaluate gdss_qm9 --samples x.smi --split banana", 2, ("banana", "test")),
    Row("evaluate without samples", "evaluate toy", 2, ("--samples",)),
    Row("export without checkpoint", "export toy", 2, ("--checkpoint",)),
    Row("samplers extra args", "samplers toy extra", 2, ("extra",)),
    Row("recipes extra args", "recipes extra", 2, ("extra",)),
    Row("no pretrained", "sample toy --num 2", 1, ("ships no pretrained", "genmodels train toy")),
    # --- missing, empty, corrupt and wrong-kind files: exit 1
    Row("checkpoint missing", "sample toy --checkpoint {tmp}/nope --num 2", 1, ("nope",)),
    Row(
        "checkpoint folder empty",
        "sample gdss_community_small --checkpoint {tmp}/empty --num 2",
        1,
        ("empty",),
        _empty_dir,
    ),
    Row(
        "checkpoint truncated",
        "sample gdss_community_small --checkpoint {tmp}/ckpt --num 2",
        1,
        ("ckpt",),
        _truncated_checkpoint,
    ),
    Row(
        "checkpoint of another recipe",
        f"sample gdss_qm9 --checkpoint {PRETRAINED / 'gdss_community_small'} --num 2",
        1,
        ("gdss_community_small", "gdss_qm9"),
    ),
    Row("samples missing", "evaluate toy --samples {tmp}/none.npz", 1, ("none.npz",)),
    Row("samples empty", "evaluate gdss_qm9 --samples {tmp}/e.smi", 1, ("e.smi",), _write("e.smi", "")),
    Row(
        "samples binary",
        "evaluate gdss_community_small --samples {tmp}/b.g6",
        1,
        ("b.g6",),
        _write("b.g6", bytes(range(256)) * 4),
    ),
    Row(
        "samples of another kind",
        "evaluate gdss_qm9 --samples {tmp}/g.g6",
        1,
        ("g.g6",),
        _write("g.g6", "DQc\nDUW\n"),
    ),
    Row("samples empty cif", "evaluate cdvae_perov5 --samples {tmp}/e.cif", 1, ("e.cif",), _write("e.cif", "")),
    Row(
        "npz with object arrays",
        "evaluate toy --samples {tmp}/obj.npz",
        1,
        ("obj.npz",),
        _object_npz,
    ),
    Row("npz truncated", "evaluate toy --samples {tmp}/t.npz", 1, ("t.npz",), _write("t.npz", b"PK\x03\x04abc")),
    Row(
        "data folder missing a file",
        "train gdss_community_small --workdir {tmp}/run",
        1,
        ("community_small",),
        env={"GENMODELS_DATA_DIR": "{tmp}/nodata", "GENMODELS_OFFLINE": "1"},
    ),
    # --- through the installed script
    Row("script: usage error", "sample toy --num 0", 2, ("--num",), proc=True),
    Row(
        "script: debug shows the traceback",
        "--debug sample toy --num 0",
        2,
        ("Traceback", "UsageError"),
        proc=True,
    ),
]  # fmt: skip


def _fill(text: str, tmp: Path) -> str:
    return text.replace("{tmp}", str(tmp))


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_gives_one_clear_line(row: Row, tmp_path, capfd, monkeypatch):
    if row.setup:
        row.setup(tmp_path)
    args = [_fill(a, tmp_path) for a in row.args.split()]
    env = {k: _fill(v, tmp_path) for k, v in row.env.items()}
    if row.proc:
        res = subprocess.run(
            [_exe(), *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=300
        )
        code, err = res.returncode, res.stderr
    else:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        code = main(args)
        err = capfd.readouterr().err
    assert code == row.code, err
    for needle in row.needles:
        assert needle in err, f"{needle!r} not in stderr: {err!r}"
    if "--debug" not in args:
        assert "Traceback" not in err, err
        lines = [ln for ln in err.splitlines() if ln.strip() and "\r" not in ln]
        assert 1 <= len(lines) <= 2, err


def test_help_of_sample_leads_with_its_own_options(capsys):
    assert main(["sample", "gdss_qm9", "--help"]) == 0
    text = capsys.readouterr().out
    # own options first, each with a description; sampler names from the registry
    assert text.index("--checkpoint") < text.index("--config.")
    assert "reverse_langevin,euler" in text and "how many samples" in text
    assert "--no-correction" in text
    # training and optimiser fields cannot matter for sampling
    assert "--config.train." not in text and "--config.optim." not in text


def test_recipes_into_a_closed_pipe_is_quiet():
    res = subprocess.run(
        f"{_exe()} recipes | head -n 1", shell=True, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 1
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr


def test_ctrl_c_during_training_says_how_to_resume(tmp_path):
    wd = tmp_path / "run"
    args = ["train", "toy", "--workdir", str(wd), "--train.steps", "1000000"]
    args += ["--train.ckpt-every", "20", "--train.log-every", "10", "--train.no-progress"]
    proc = subprocess.Popen([_exe(), *args], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (wd / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "run the same command to resume" in err, err
    assert "Traceback" not in err, err


def _train_toy(wd: Path, steps: int, *extra: str) -> list[str]:
    args = ["train", "toy", "--workdir", str(wd), "--train.steps", str(steps)]
    return [
        *args,
        "--train.ckpt-every",
        "20",
        "--train.log-every",
        "10",
        "--train.no-progress",
        *extra,
    ]


def _logged_steps(wd: Path) -> list[int]:
    import json

    return [json.loads(line)["step"] for line in (wd / "metrics.jsonl").read_text().splitlines()]


def test_a_killed_run_resumes_and_logs_each_step_once(tmp_path):
    wd = tmp_path / "run"
    proc = subprocess.Popen([_exe(), *_train_toy(wd, 1_000_000)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not (
        (wd / "metrics.jsonl").exists() and _logged_steps(wd)[-1:] >= [50]
    ):
        time.sleep(0.2)
    proc.kill()  # SIGKILL: no chance to save
    proc.wait(timeout=60)
    logged = _logged_steps(wd)
    assert logged and logged[-1] >= 50
    end = logged[-1] + 40
    res = subprocess.run([_exe(), *_train_toy(wd, end)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    steps = _logged_steps(wd)
    assert steps == sorted(set(steps)) and steps[-1] == end


def test_training_skips_a_truncated_newest_checkpoint(tmp_path, capfd):
    wd = tmp_path / "run"
    assert main(_train_toy(wd, 60)) == 0
    newest = wd / "checkpoints" / "60"
    for p in (newest / "state").rglob("d/*"):
        p.write_bytes(p.read_bytes()[:5])
    capfd.readouterr()
    assert main(_train_toy(wd, 80)) == 0
    err = capfd.readouterr().err
    assert "checkpoints/60 is unreadable" in err and "resuming from step 40" in err, err
    assert "Traceback" not in err
    assert _logged_steps(wd) == list(range(10, 81, 10))
