"""Molecule recipes on a user's own SMILES file (``--dataset PATH``).

The command-line path (``genmodels train`` -> ``sample`` -> ``evaluate``) on a tiny
``.smi`` file with malformed rows and a tiny network (masked diffusion in the default
suite, GDSS under ``-m slow``); then every other molecule
method (PARD, masked diffusion, flow matching, PFGM++) on a tiny ``.csv`` whose vocabulary
differs from QM9's, so a network sized from the recipe's benchmark instead of the file
would fail: the training loss traced (shapes only) in the default suite, two compiled
training steps under ``-m slow``."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from rdkit import Chem

from genmodels.cli import main
from genmodels.datasets.user import UserData
from genmodels.recipes import load_recipe

# drug-like fragments with S and Cl (not in QM9's vocabulary), at most 9 heavy atoms
MOLS = [
    "CCOC(=O)C",
    "CSc1ccccc1",
    "Clc1ccccc1",
    "CC(C)NC(=O)C",
    "OC1CCSC1",
    "CN1CCNCC1",
    "Cc1ccc(Cl)cc1",
    "CC(=O)Nc1cccs1",
    "NCCc1ccccc1",
    "OCCN1CCOCC1",
    "CC(C)Cl",
    "CSCC(N)C(=O)O",
]
ELEMENTS = ("C", "N", "O", "S", "Cl")


def elements(smiles: list[str]) -> set[str]:
    return {a.GetSymbol() for s in smiles if s for a in Chem.MolFromSmiles(s).GetAtoms()}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))


TINY_GDSS = [
    *("--net.depth 1 --net.nhid 4 --net.num-layers 2 --net.num-linears 1".split()),
    *("--net.adim 4 --net.c-hid 2 --net.c-final 2".split()),
]


TINY_MDM = "--net.dx 8 --net.de 4 --net.heads 2 --net.layers 1 --net.ffn-x 8 --net.ffn-e 4"
CLI_RECIPES = [
    pytest.param("mdm_qm9", TINY_MDM.split(), [], id="mdm"),
    # GDSS's initialisers and training step: ~35 s of compiles on 2 cores
    pytest.param("gdss_qm9", TINY_GDSS, ["--steps", "4"], id="gdss", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("recipe, tiny, sampling", CLI_RECIPES)
def test_trains_samples_and_evaluates_on_a_smiles_file(recipe, tiny, sampling, tmp_path, capsys):
    data = tmp_path / "mine.smi"
    lines = ["# my molecules", *MOLS[:5], "C1CC(", *MOLS[5:], "", "not_a_molecule name"]
    data.write_text("\n".join(lines) + "\n")  # bad: lines 7 and 16
    wd, out = tmp_path / "run", tmp_path / "s.smi"
    train = ["train", recipe, "--dataset", str(data), "--workdir", str(wd)]
    opts = ["--train.steps", "2", "--train.batch-size", "4", "--train.progress", "False"]
    skipped = "mine.smi: skipped 2 of 14 molecules \\(invalid SMILES: lines 7, 16\\)"
    with pytest.warns(UserWarning, match=skipped):
        assert main([*train, *opts, "--test-fraction", "0.25", *tiny]) == 0
    # the run keeps a copy of its data: sampling and evaluating need only the checkpoint
    assert (wd / "data" / "mine.smi").read_bytes() == data.read_bytes()
    data.unlink()

    sample = ["sample", recipe, "--checkpoint", str(wd), "--num", "6", "--out", str(out)]
    assert main([*sample, *sampling, "--batch-size", "6"]) == 0
    got = out.read_text().splitlines()
    assert len(got) == 6
    # only the file's elements can come out: the network's channels are its vocabulary
    assert elements(got) <= set(ELEMENTS)

    capsys.readouterr()
    evaluate = ["evaluate", recipe, "--samples", str(out), "--checkpoint", str(wd)]
    assert main([*evaluate, "--config.eval-fcd", "False"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["num_samples"] == 6 and 0 <= metrics["novelty"] <= 1
    assert np.isfinite(metrics["nspdk"])


def test_a_smiles_file_without_a_good_row_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.smi"
    bad.write_text("xx\nC1CC(\n")
    assert main(["train", "gdss_qm9", "--dataset", str(bad), "--workdir", str(tmp_path / "b")]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    err = [ln for ln in err if not ln.startswith("converting")]  # the progress bar
    assert len(err) == 1 and "bad.smi: no molecule" in err[0] and "lines 1, 2" in err[0]


def tiny(name: str, path: str):
    """The recipe's config on ``path`` with a tiny network and batch."""
    from genmodels.nets.graph_transformer import GraphTransformerConfig
    from genmodels.nets.ppgn import PPGNTransformerConfig

    cfg = load_recipe(name)[0]
    train = dataclasses.replace(cfg.train, batch_size=4)
    kw = dict(dataset=path, data=UserData(test_fraction=0.25), eval_fcd=False, train=train)
    if name.startswith("pard"):
        kw["net"] = PPGNTransformerConfig(hidden=8, edge_hidden=4, layers=1, heads=2)
    elif name.startswith("mdm"):
        kw["net"] = GraphTransformerConfig(dx=8, de=4, heads=2, layers=1, ffn_x=8, ffn_e=4)
    else:
        small = dict(depth=1, nhid=4, num_layers=2, adim=4, c_hid=2, c_final=2, num_linears=1)
        kw["net"] = dataclasses.replace(cfg.net, **small)
    return dataclasses.replace(cfg, **kw)


METHODS = ["pard_qm9", "mdm_qm9", "flow_qm9", "pfgmpp_qm9"]


def smiles_csv(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("name,Smiles\n" + "".join(f"m{i},{s}\n" for i, s in enumerate(MOLS)))
    return str(path)


@pytest.mark.parametrize("name", METHODS)
def test_every_molecule_method_builds_its_network_from_a_smiles_csv(name, tmp_path):
    """The task reads the file and the network is sized from it: the loss of a training
    batch traces (shapes only, nothing compiled) to a scalar."""
    method = tiny(name, smiles_csv(tmp_path)).build()
    task = method.task
    assert task.domain.atoms == ELEMENTS and task.max_atoms == 9
    assert len(task.splits[1]) == 3 and len(task.splits[0]) == 9
    batch = {k: jnp.asarray(v) for k, v in method.loader().batch(0).items()}
    graphdef, state = nnx.split(nnx.eval_shape(lambda: method.init_model(jax.random.PRNGKey(0))))

    def loss(state):
        return method.loss_fn(nnx.merge(graphdef, state), batch, jax.random.PRNGKey(1))[0]

    assert jax.eval_shape(loss, state).shape == ()


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_every_molecule_method_trains_on_a_smiles_csv(name, tmp_path):
    """Two Adam steps (compiled: about a minute each on two busy cores)."""
    import optax

    method = tiny(name, smiles_csv(tmp_path)).build()
    model = nnx.jit(method.init_model)(jax.random.PRNGKey(0))
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    batch = {k: jnp.asarray(v) for k, v in method.loader().batch(0).items()}

    @nnx.jit
    def step(model, opt, key):
        loss_of = lambda m: method.loss_fn(m, batch, key)[0]  # noqa: E731
        loss, grads = nnx.value_and_grad(loss_of)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt, jax.random.PRNGKey(i))) for i in range(2)]
    assert np.all(np.isfinite(losses))
