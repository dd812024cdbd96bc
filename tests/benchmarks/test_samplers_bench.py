"""Smoke test of benchmarks/samplers.py in its --quick mode.

Checks that the benchmark runs, reports every requested sampler with the NFE its sampler
reports and positive timings, and writes the same object as JSON. Speed is never asserted
(see DESIGN.md: speed is measured in benchmarks/, never in a timed test).
"""

import json
import math
from pathlib import Path

import pytest

# One sampler per module (pc, langevin, ode, masked) keeps the default test short: each
# costs three XLA compiles, up to ~7 s each for the masked ones on a loaded 2-core machine.
# The slow test runs all of them.
_SUBSET = ["em_langevin", "annealed_langevin", "heun_edm", "first_hitting"]

_ROW_KEYS = {
    "key",
    "name",
    "network",
    "steps",
    "nfe",
    "compile_s",
    "net_compile_s",
    "sampler_s",
    "sampler_runs_s",
    "net_per_call_s",
    "net_runs_s",
    "sampler_per_nfe_s",
    "overhead",
    "overhead_min",
    "overhead_paired",
    "finite",
    "null_compile_s",
    "null_field_s",
    "null_field_runs_s",
    "null_overhead",
}


def _check(result: dict, out: Path, keys: list[str], mod) -> None:
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert {"benchmark", "command", "config", "environment", "samplers"} <= set(result)
    prims = result["primitives_per_step_s"]
    assert set(prims) == {
        "normal_state",
        "uniform_state",
        "categorical_f64grade",
        "categorical_f32",
        "net_cont",
        "net_tok",
    }
    assert all(v > 0 for v in prims.values())
    cfg = result["config"]
    assert cfg["batch"] == mod.QUICK.batch and cfg["steps"] == mod.QUICK.steps
    rows = result["samplers"]
    assert [r["key"] for r in rows] == keys
    steps, tokens = cfg["steps"], cfg["tokens"]
    expected_nfe = {  # hand counts from the samplers' docstrings at the quick sizes
        "em": steps,
        "em_langevin": 2 * steps,
        "rd": steps,
        "rd_langevin": 2 * steps,
        "s4": steps,
        "annealed_langevin": (steps // cfg["langevin_each"]) * cfg["langevin_each"],
        "flow_euler": steps,
        "heun_edm": 2 * steps - 1,
        "heun_pfgmpp": 2 * steps - 1,
        "pf_ode_tsit5": 1 + 6 * steps,  # Tsit5: 7 stages, first same as last
        "pf_ode_euler": steps,
        "first_hitting": tokens,  # one token per call, no padding
        "first_hitting_f32": tokens,
    }
    for r in rows:
        assert set(r) == _ROW_KEYS, r["key"]
        if r["key"] in expected_nfe:
            assert r["nfe"] == expected_nfe[r["key"]], r["key"]
        else:  # ancestral with caching: dynamic, at most one call per step
            assert 1 <= r["nfe"] <= steps, r["key"]
        for k in ("compile_s", "net_compile_s", "null_compile_s", "sampler_s"):
            assert r[k] > 0, (r["key"], k)
        for k in ("net_per_call_s", "sampler_per_nfe_s", "null_field_s"):
            assert r[k] > 0, (r["key"], k)
        assert len(r["sampler_runs_s"]) == len(r["net_runs_s"]) == cfg["repeats"]
        assert all(t > 0 for t in r["sampler_runs_s"] + r["net_runs_s"])
        assert math.isfinite(r["overhead"]) and r["overhead"] > -1.0
        assert r["sampler_per_nfe_s"] == pytest.approx(r["sampler_s"] / r["nfe"])
        assert r["finite"] is True


@pytest.mark.slow  # runs the benchmark script (~20 s); a smoke test of a benchmark, not of the package
def test_quick_subset(bench, tmp_path):
    mod = bench("samplers")
    out = tmp_path / "res" / "samplers.json"
    result = mod.main(["--quick", "--only", ",".join(_SUBSET), "--out", str(out)])
    _check(result, out, _SUBSET, mod)


@pytest.mark.slow
def test_quick_all(bench, tmp_path):
    mod = bench("samplers")
    out = tmp_path / "samplers.json"
    result = mod.main(["--quick", "--out", str(out)])
    _check(result, out, [s.key for s in mod.SPECS], mod)
