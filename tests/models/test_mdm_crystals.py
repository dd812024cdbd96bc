"""Masked diffusion over crystal atom types: tokens, corruption, loss, samplers (NFE),
network symmetry, sample files, evaluate and the CLI path, all with tiny sizes.

Two data sources: the first rows of perov_5 val.csv / test.csv (real crystals, always 5
atoms) and a synthetic split of compositions with 1 to 7 atoms (for the padding).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from pymatgen.core import Composition, Element

from genmodels.domains.crystals import read_compositions, write_compositions
from genmodels.models.mdm_crystals import (
    MDMCrystalConfig,
    MDMCrystalNet,
    MDMCrystals,
    SetTransformerConfig,
)
from genmodels.train.config import OptimConfig, TrainConfig

DATA = Path(os.environ.get("GENMODELS_DATA_DIR", "data")) / "crystals" / "perov_5"
needs_data = pytest.mark.skipif(
    not (DATA / "val.csv").exists() or not (DATA / "test.csv").exists(),
    reason="perov_5 val.csv / test.csv not available",
)

TINY_NET = SetTransformerConfig(dim=16, heads=2, layers=1, ffn=16)
TINY = MDMCrystalConfig(
    dataset="perov_5",
    train_split="val",
    eval_split="test",
    train_limit=8,
    eval_limit=8,
    net=TINY_NET,
    sample_steps=10,
    sample_batch=4,
    train=TrainConfig(steps=2, batch_size=8, log_every=1, ckpt_every=2, progress=False),
    optim=OptimConfig(lr=3e-3),
)
# synthetic "train" and "test" splits with 1..7 atoms
SYNTH = {
    "val": ["Fe1", "Na1 Cl1", "Si1 O2", "Li2 O1", "Ca1 Ti1 O3", "Al2 O3", "Mg1 Al2 O4",
            "Ba1 Ti1 O3", "K1 F1", "Sr1 Ti1 O3", "Cu1", "Zn1 S1"],
    "test": ["Na1 Cl1", "Ca1 Ti1 O3", "Mg1 O1", "Al2 O3", "Fe2 O3"],
}  # fmt: skip


def synthetic_dataset(split: str):
    """A CrystalDataset of ``SYNTH[split]`` (dummy coordinates and lattices)."""
    from genmodels.datasets.crystals import CrystalDataset
    from genmodels.domains.crystals import CrystalArrays

    zs = []
    for f in SYNTH[split]:
        c = Composition(f)
        zs.append(np.repeat([e.Z for e in c], [int(a) for a in c.values()]))
    n = np.array([len(z) for z in zs])
    arrays = CrystalArrays(
        frac=np.zeros((n.sum(), 3)),
        atomic_numbers=np.concatenate(zs).astype(np.int64),
        num_atoms=n,
        lattice=np.tile([4.0, 4.0, 4.0, 90.0, 90.0, 90.0], (len(n), 1)),
    )
    return CrystalDataset(
        name="perov_5",
        split=split,
        material_ids=np.array([f"s{i}" for i in range(len(n))]),
        properties=np.zeros(len(n)),
        arrays=arrays,
    )


def uniform_baseline(task, num: int, seed: int = 0) -> list[Composition]:
    """A reference point: training atom counts with uniformly random elements."""
    rng = np.random.default_rng(seed)
    counts = rng.choice(task.train_counts, size=num)
    syms = np.asarray(task.elements)
    return [Composition(Counter(rng.choice(syms, size=int(n)).tolist())) for n in counts]


@pytest.fixture(scope="module")
def synth():
    """The method on the synthetic splits (train: 12 compositions of 1..7 atoms)."""
    method = TINY.build()
    method.task._datasets = {s: synthetic_dataset(s) for s in SYNTH}
    return method


@pytest.fixture(scope="module")
def perov():
    return TINY.build()


# ------------------------------------------------------------------ tokens and loss


def test_vocabulary_and_padding_of_the_synthetic_split(synth):
    zs = sorted({e.Z for f in SYNTH["val"] + SYNTH["test"] for e in Composition(f)})
    assert synth.task.elements == tuple(Element.from_Z(z).symbol for z in zs)
    assert synth.max_atoms == 7 and synth.processes["types"].mask_id == synth.task.num_types
    types = synth.loader().arrays["types"]
    assert types.shape == (12, 7)
    np.testing.assert_array_equal((types >= 0).sum(1), synth.task.train_counts)


@needs_data
def test_token_round_trip_of_real_crystals(perov):
    """crystal -> tokens -> composition equals the crystal's composition."""
    structures = perov.task.dataset("val").structures()
    x0, ctx = perov.tokens(perov.task.encode(structures))
    assert x0["types"].shape == (8, 5)
    back = perov.decode(x0, ctx)
    assert back == [s.composition for s in structures]
    assert back == perov.task.compositions("val")
    # the loader's rows are the same tokens (atoms sorted by atomic number)
    np.testing.assert_array_equal(perov.loader().arrays["types"], np.asarray(x0["types"]))
    assert [c.formula for c in back][:1] == [structures[0].composition.formula]


def test_encode_rejects_unknown_elements(synth):
    with pytest.raises(ValueError, match="not in the vocabulary"):
        synth.task.encode(["U1 O2"])


def test_corruption_masks_only_real_atoms(synth):
    x0, ctx = synth.tokens(synth.task.encode(SYNTH["val"]))
    real = np.asarray(ctx["node_mask"]) > 0
    k = synth.task.num_types
    clean = np.asarray(x0["types"])
    fracs = []
    corrupt = jax.jit(synth.corrupt)
    for i in range(20):
        t, xt, aux = corrupt(x0, ctx, jax.random.PRNGKey(i))
        xt = np.asarray(xt["types"])
        masked = xt == k
        assert not masked[~real].any() and np.all(xt[~real] == 0)
        np.testing.assert_array_equal(masked, np.asarray(aux["types"]["is_masked"]))
        np.testing.assert_array_equal(xt[~masked], clean[~masked])  # the rest is kept
        fracs.append(masked.sum() / real.sum())
    assert 0.2 < np.mean(fracs) < 0.8  # antithetic t covers (0, 1): half masked on average
    # at t = 1 every real atom is masked, at t = t_eps (almost) none
    from genmodels.processes.base import corrupt_state

    xt, _ = corrupt_state(synth.processes, jax.random.PRNGKey(0), x0, jnp.ones(12), ctx)
    np.testing.assert_array_equal(np.asarray(xt["types"]) == k, real)


def test_loss_is_the_weighted_cross_entropy_of_masked_atoms(synth):
    """Hand computation: w(t) = -alpha'/(1 - alpha) = 1/t (linear), CE on masked atoms."""
    model = synth.init_model(jax.random.PRNGKey(0))
    batch = synth.loader().batch(0)

    @nnx.jit
    def run(model, batch, key):  # one compile: the loss and its pieces
        x0, ctx = synth.tokens(batch)
        t, xt, _ = synth.corrupt(x0, ctx, key)
        return synth.loss_fn(model, batch, key), (x0, ctx, t, xt, model(xt, t, ctx))

    (loss, metrics), (x0, ctx, t, xt, preds) = run(model, batch, jax.random.PRNGKey(7))
    lg = np.asarray(preds["types"], np.float64)  # [B, N, K]
    assert lg.shape[-1] == synth.task.num_types
    logp = lg - lg.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, np.asarray(x0["types"])[..., None], -1)[..., 0]
    real = np.asarray(ctx["node_mask"]) > 0
    masked = (np.asarray(xt["types"]) == synth.task.num_types) & real
    assert masked.any() and (~masked & real).any()
    t = np.maximum(np.asarray(t, np.float64), synth.config.t_eps)
    want = np.mean(np.sum(np.where(masked, nll, 0.0), 1) / t)
    np.testing.assert_allclose(float(loss), want, rtol=1e-4)
    natoms = real.sum(1)
    np.testing.assert_allclose(float(metrics["nll_per_atom"]), want / natoms.mean(), rtol=1e-4)
    # log(n! / prod n_e!) distinct orderings of each composition
    from math import factorial, log

    comps = synth.decode(x0, ctx)
    orders = [log(factorial(int(c.num_atoms))) for c in comps]
    orders = [o - sum(log(factorial(int(a))) for a in c.values()) for o, c in zip(orders, comps)]
    np.testing.assert_allclose(float(metrics["nll_composition"]), want - np.mean(orders), rtol=1e-4)


def test_network_is_permutation_equivariant_and_ignores_padding(synth):
    model = synth.init_model(jax.random.PRNGKey(1))
    x0, ctx = synth.tokens(synth.task.encode(["Mg1 Al2 O4", "Ca1 Ti1 O3"]))
    x = np.array(x0["types"])
    x[:, :3] = synth.task.num_types  # a few mask tokens among the real atoms
    perm = np.array([3, 0, 6, 1, 5, 2, 4])
    junk = x[1].copy()
    junk[5:] = 3  # padding holds a real token id: must be ignored
    batch = np.stack([x[0], x[0][perm], x[1], junk])
    mask = np.asarray(ctx["node_mask"])[[0, 0, 1, 1]]
    fn = nnx.jit(lambda m, x, mask: m({"types": x}, jnp.full(x.shape[0], 0.5), {"node_mask": mask}))
    out = np.asarray(fn(model, jnp.asarray(batch), jnp.asarray(mask))["types"])
    np.testing.assert_allclose(out[1], out[0][perm], atol=1e-5)  # equivariance
    np.testing.assert_allclose(out[2, 5:], 0.0)  # zero on padding
    np.testing.assert_allclose(out[3], out[2], atol=1e-5)  # padding contents
    # the padded length does not matter either
    out5 = fn(model, jnp.asarray(x[1:, :5]), jnp.ones((1, 5)))["types"]
    np.testing.assert_allclose(np.asarray(out5)[0], out[2, :5], atol=1e-5)


# ------------------------------------------------------------------ sampling


class CountingNet(MDMCrystalNet):
    """Counts network evaluations at run time (inside the jitted sampling loops)."""

    calls: list = []

    def __call__(self, state, t, ctx):
        jax.debug.callback(lambda: CountingNet.calls.append(1))
        return super().__call__(state, t, ctx)


@pytest.mark.parametrize("sampler", ["fhs", "ancestral"])
def test_samplers_unmask_everything_keep_padding_and_count_calls(synth, sampler):
    """FHS calls the network once per atom of the batch's largest crystal; the cached
    ancestral sampler at most once per step."""
    k = synth.task.num_types
    model = CountingNet(TINY_NET, k, False, rngs=nnx.Rngs(0))
    CountingNet.calls.clear()
    steps = 6
    state, ctx, info = synth.sample_states(
        model, jax.random.PRNGKey(1), 16, sampler=sampler, steps=steps
    )
    jax.block_until_ready(state)
    jax.effects_barrier()
    types, real = np.asarray(state["types"]), np.asarray(ctx["node_mask"]) > 0
    assert types.shape == (16, 7)
    assert np.all((types[real] >= 0) & (types[real] < k))  # no mask token
    assert np.all(types[~real] == 0)
    counts = real.sum(1)
    assert set(counts.tolist()) <= set(synth.task.train_counts.tolist()) and len(set(counts)) > 1
    nfe = int(info["nfe"])
    assert nfe == len(CountingNet.calls)
    if sampler == "fhs":
        assert nfe == counts.max()
    else:
        assert 1 <= nfe <= steps
    comps = synth.decode(state, ctx)
    assert [int(c.num_atoms) for c in comps] == counts.tolist()
    assert {e.symbol for c in comps for e in c} <= set(synth.task.elements)


def test_sampler_options_are_checked(synth):
    model = synth.init_model(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="cannot integrate masked"):
        synth.sample_states(model, jax.random.PRNGKey(0), 3, sampler="euler")
    with pytest.raises(ValueError, match="precision"):
        synth.sample_states(model, jax.random.PRNGKey(0), 3, precision="float16")
    with pytest.raises(ValueError, match="num_atoms"):
        synth.sample_states(model, jax.random.PRNGKey(0), 3, num_atoms=8)
    with pytest.raises(ValueError, match="unknown options"):
        synth.sample(model, jax.random.PRNGKey(0), 3, correction=False)


# ------------------------------------------------------------------ files and metrics


def test_sample_file_round_trip_and_errors(synth, tmp_path):
    comps = uniform_baseline(synth.task, 9, seed=1)
    path = tmp_path / "s.txt"
    synth.write_samples(comps, path)
    lines = path.read_text().splitlines()
    assert len(lines) == 9 and lines[0] == comps[0].formula
    assert synth.read_samples(path) == comps
    write_compositions([Composition("CaTiO3")], path)
    assert path.read_text() == "Ca1 Ti1 O3\n"
    for bad, why in (("Ca1 Ti1 O3\nhello world\n", "hello world"), ("O1\n\nN1\n", "empty")):
        (tmp_path / "bad.txt").write_text(bad)
        with pytest.raises(ValueError, match=rf"bad\.txt:2: .*{why}"):
            read_compositions(tmp_path / "bad.txt")
    (tmp_path / "bad.txt").write_text("Ca1 O1\nCa0.5 O1\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2: .*non-integer"):
        read_compositions(tmp_path / "bad.txt")
    (tmp_path / "bad.txt").write_text("Xx1 O1\n")
    with pytest.raises(ValueError, match=r"bad\.txt:1: .*not a chemical element"):
        read_compositions(tmp_path / "bad.txt")


@needs_data
def test_evaluate_the_reference_split_against_itself(perov):
    from genmodels.metrics.crystals import composition_validity

    ref = perov.task.compositions("test")
    m = perov.evaluate(ref)
    assert m["element_tv"] == 0.0 and m["nelem_wdist"] == 0.0
    assert m["num"] == 8.0 and m["uniqueness"] == len({c.reduced_formula for c in ref}) / 8
    assert m["comp_validity"] == np.mean([composition_validity(c) for c in ref])
    # formulas as strings (a sample file's lines) give the same figures
    assert perov.evaluate([c.formula for c in ref]) == m
    base = perov.evaluate(uniform_baseline(perov.task, 200, seed=0))
    assert base["element_tv"] > 0.3 and base["nelem_wdist"] > 0.3
    assert set(base) == {
        "comp_validity", "nelem_wdist", "nelem_wdist_valid", "element_tv", "uniqueness",
        "novelty", "num", "num_valid",
    }  # fmt: skip
    with pytest.raises(ValueError, match="no samples"):
        perov.evaluate([])


def test_evaluate_hand_computed_statistics(synth):
    """Samples NaCl, NaCl, Fe vs the synthetic test split."""
    m = synth.evaluate(["Na1 Cl1", "Na2 Cl2", "Fe1"], split="test")
    # element frequencies: samples Na 3/7, Cl 3/7, Fe 1/7; test Na 1, Cl 1,
    # Ca 1, Ti 1, O 3+1+3+3, Mg 1, Al 2, Fe 2 (19 atoms)
    p = {"Na": 3 / 7, "Cl": 3 / 7, "Fe": 1 / 7}
    q = {"Na": 1, "Cl": 1, "Ca": 1, "Ti": 1, "O": 10, "Mg": 1, "Al": 2, "Fe": 2}
    q = {k: v / 19 for k, v in q.items()}
    tv = 0.5 * sum(abs(p.get(k, 0) - q.get(k, 0)) for k in set(p) | set(q))
    assert m["element_tv"] == pytest.approx(tv)
    from scipy.stats import wasserstein_distance

    assert m["nelem_wdist"] == pytest.approx(wasserstein_distance([2, 2, 1], [2, 3, 2, 2, 2]))
    assert m["uniqueness"] == pytest.approx(2 / 3)  # NaCl twice (reduced formula)
    assert m["novelty"] == 0.0 and m["comp_validity"] == 1.0


# ------------------------------------------------------------------ recipe and CLI


def test_recipe_config():
    from genmodels.recipes import load_recipe

    cfg, _ = load_recipe("mdm_perov5")
    assert isinstance(cfg, MDMCrystalConfig)
    assert cfg.sampler == "fhs" and cfg.precision == "float64" and not cfg.time_conditioning
    assert cfg.train_split == "val" and cfg.eval_split == "test"
    assert isinstance(cfg.build(), MDMCrystals)


@needs_data
def test_cli_train_sample_evaluate(tmp_path, capsys):
    """A 2-step run through ``genmodels train``; ``sample --sampler ancestral --steps 7
    --precision float32`` (the defaults, fhs and float64, are covered above) writes the
    file and its sidecar; ``evaluate`` prints the metrics of the file."""
    from genmodels.cli import main
    from genmodels.models.run import read_sidecar

    small = [
        "--train-limit", "8", "--eval-limit", "8", "--net.dim", "16", "--net.heads", "2",
        "--net.layers", "1", "--net.ffn", "16",
    ]  # fmt: skip
    run = tmp_path / "run"
    train = ["--train.steps", "2", "--train.batch-size", "8", "--train.progress", "False"]
    assert main(["train", "mdm_perov5", "--workdir", str(run), *train, *small]) == 0
    cfg = [a.replace("--", "--config.", 1) if a.startswith("--") else a for a in small]
    out = tmp_path / "s.txt"
    argv = ["sample", "mdm_perov5", "--checkpoint", str(run), "--num", "6", "--out", str(out)]
    argv += ["--sampler", "ancestral", "--steps", "7", "--precision", "float32"]
    assert main([*argv, "--batch-size", "4", *cfg]) == 0
    comps = read_compositions(out)
    assert len(comps) == 6 and all(c.num_atoms == 5 for c in comps)
    meta = read_sidecar(out)
    assert meta["sampler"] == "ancestral" and meta["steps"] == 7
    assert meta["precision"] == "float32"
    capsys.readouterr()
    assert main(["evaluate", "mdm_perov5", "--samples", str(out), *cfg]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["num"] == 6 and 0 <= got["comp_validity"] <= 1 and 0 < got["element_tv"] <= 1


def test_pretrained_composition_model_beats_a_uniform_baseline(tmp_path, capsys):
    """``genmodels sample mdm_perov5 --checkpoint pretrained``: compositions as valid as the
    test split's and far closer to its element mix than uniform random elements (shipped
    figures, 3 x 1,000 samples: comp_validity 0.987, element_tv 0.064; uniform: 0.82, 0.53)."""
    from genmodels.cli import main
    from genmodels.recipes import load_recipe

    _, info = load_recipe("mdm_perov5")
    assert info.has_pretrained, f"{info.pretrained_dir} is missing"
    shipped = json.loads((info.pretrained_dir / "metrics.json").read_text())
    assert shipped["num_samples_per_seed"] == 1000 and shipped["train"]["wall_s"] > 0
    out = tmp_path / "c.txt"
    argv = ["sample", "mdm_perov5", "--checkpoint", "pretrained", "--num", "400"]
    assert main([*argv, "--out", str(out), "--sampler", "fhs"]) == 0
    assert len(out.read_text().splitlines()) == 400
    capsys.readouterr()
    assert main(["evaluate", "mdm_perov5", "--samples", str(out)]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["comp_validity"] >= 0.95, got
    assert got["element_tv"] < 0.2, got  # uniform random elements: 0.53
    assert got["nelem_wdist"] < 0.2, got  # uniform random elements: 1.01
