"""``genmodels train/sample/evaluate RECIPE --dataset CIF_FOLDER``: CDVAE and masked
diffusion over compositions on a user's own crystals; the generated crystals use only the
elements of the user's data."""

import csv
import dataclasses
import json
import shutil
import warnings
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.io.cif import CifWriter

from genmodels.cli import main
from genmodels.datasets.user import UserData
from genmodels.domains.crystals import read_cif
from genmodels.models.cdvae import CDVAEConfig, _only
from genmodels.recipes import load_recipe
from genmodels.train.config import TrainConfig

# cubic perovskites ABO3 of a few elements only (5 atoms each) and one 8-atom rock salt
PEROVSKITES = [("Sr", "Ti", 3.9), ("Ba", "Ti", 4.0), ("Sr", "Zr", 4.1), ("Ba", "Zr", 4.2)] * 3
ELEMENTS = {"Sr", "Ba", "Ti", "Zr", "O", "Mg"}
CDVAE_TINY = (
    "--latent-dim 8 --hidden-dim 16 --enc-hidden 16 --enc-blocks 1 --dec-hidden 16 "
    "--dec-blocks 1 --max-neighbors 8 --num-noise-level 2 --sample-batch 4"
).split()
MDM_TINY = "--net.dim 8 --net.heads 1 --net.layers 1 --net.ffn 16 --sample-batch 8".split()


def _as_config(args):
    """``--x`` -> ``--config.x`` (sample and evaluate take config overrides so)."""
    return [f"--config.{a[2:]}" if a.startswith("--") else a for a in args]


@pytest.fixture
def cif_dir(tmp_path, monkeypatch):
    """12 perovskites and a rock salt as CIF files, one broken file; a private cache."""
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))
    d = tmp_path / "my_cifs"
    d.mkdir()
    pos = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    for i, (a, b, length) in enumerate(PEROVSKITES):
        s = Structure(Lattice.cubic(length + 0.01 * i), [a, b, "O", "O", "O"], pos)
        CifWriter(s).write_file(d / f"p{i:02d}.cif")
    fcc = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    salt = Structure(Lattice.cubic(4.2), ["Mg"] * 4 + ["O"] * 4, np.r_[fcc, (fcc + 0.5) % 1])
    CifWriter(salt).write_file(d / "salt.cif")
    (d / "broken.cif").write_text("data_broken\n_cell_length_a 3.0\n")
    return d


def test_cdvae_sampling_masks_absent_elements(cif_dir):
    """The composition head's probabilities and the decoder's type logits are zero / -inf
    outside the user's elements (a benchmark data set has no mask)."""
    cfg = CDVAEConfig(
        dataset=str(cif_dir), latent_dim=8, hidden_dim=8, enc_hidden=8, enc_blocks=1,
        dec_hidden=8, dec_blocks=1, num_noise_level=2, train=TrainConfig(batch_size=4),
    )  # fmt: skip
    with pytest.warns(UserWarning, match=r"skipped 1 structure\(s\).*broken.cif"):
        method = cfg.build()
    assert method.config.max_atoms == 8  # sized by the data, not the recipe's 20
    want = sorted(Composition(e).elements[0].Z for e in ELEMENTS)
    assert np.flatnonzero(method.type_mask).tolist() == [z - 1 for z in want]
    logits = jax.random.normal(jax.random.key(1), (16, cfg.num_types))
    heads = (None, jnp.full((16,), 5), None, jnp.ones((16, 6)), logits)  # decode_stats
    st = method._heads(SimpleNamespace(decode_stats=lambda z, n: heads), jnp.zeros((16, 8)), None)
    probs = np.asarray(st["probs"])
    assert np.all(probs[:, ~method.type_mask] == 0) and np.all(probs[:, method.type_mask] > 0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)

    def decoder(*args):  # uniform logits over every class
        return jnp.zeros((2, 3, 3)), jnp.zeros((2, 3, cfg.num_types))

    _, logits = _only(decoder, method.type_mask)()
    assert set(np.flatnonzero(np.isfinite(logits[0, 0]))) == {z - 1 for z in want}
    assert CDVAEConfig(dataset="perov_5").build().type_mask is None


def test_cdvae_trains_on_the_named_csv_property(cif_dir, tmp_path):
    """``--property NAME`` of a csv turns the property head on, standardized by the
    training split (what ``optimize_property`` then optimises)."""
    path = tmp_path / "mine.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["material_id", "cif", "gap"])
        for i, cif in enumerate(sorted(cif_dir.glob("p*.cif"))):
            w.writerow([f"m{i}", cif.read_text(), 0.25 * i])
    cfg = CDVAEConfig(dataset=str(path), data=UserData(property="gap"))
    method = cfg.build()
    assert method.config.predict_property and not cfg.predict_property
    train = method.dataset("train")
    assert len(train) == 10 and np.isfinite(train.properties).all()
    np.testing.assert_allclose(method.stats["property_mean"], train.properties.mean(), rtol=1e-6)
    assert method.config.max_atoms == 5


def _elements(path) -> set[str]:
    return {el.symbol for s in read_cif(path, keep_failed=True) if s for el in s.composition}


@pytest.mark.slow  # CDVAE's training step and Langevin decoder take ~1 min to compile
def test_cdvae_own_cif_folder_train_sample_evaluate(cif_dir, tmp_path, capsys):
    work, out = tmp_path / "run", tmp_path / "samples.cif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the broken file's warning (tested above)
        argv = ["train", "cdvae_perov5", "--dataset", str(cif_dir), "--train.steps", "2"]
        assert main([*argv, "--train.batch-size", "4", "--workdir", str(work), *CDVAE_TINY]) == 0
        shutil.rmtree(cif_dir)  # the run folder keeps its own copy (run/data/cifs)
        argv = ["sample", "cdvae_perov5", "--checkpoint", str(work), "--num", "4"]
        assert main([*argv, "--out", str(out), "--steps", "1", *_as_config(CDVAE_TINY)]) == 0
        capsys.readouterr()
        argv = ["evaluate", "cdvae_perov5", "--samples", str(out), "--checkpoint", str(work)]
        assert main([*argv, *_as_config(CDVAE_TINY)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["num_generated"] == 4 and metrics["num_reference"] == 2  # ceil(13 / 10)
    assert len(read_cif(out, keep_failed=True)) == 4
    assert _elements(out) <= ELEMENTS


def test_mdm_compositions_own_cif_folder_train_sample_evaluate(cif_dir, tmp_path, capsys):
    work, out = tmp_path / "run", tmp_path / "samples.txt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        argv = ["train", "mdm_perov5", "--dataset", str(cif_dir), "--train.steps", "2"]
        assert main([*argv, "--train.batch-size", "8", "--workdir", str(work), *MDM_TINY]) == 0
        shutil.rmtree(cif_dir)  # the run folder keeps its own copy
        argv = ["sample", "mdm_perov5", "--checkpoint", str(work), "--num", "8"]
        assert main([*argv, "--out", str(out), *_as_config(MDM_TINY)]) == 0
        capsys.readouterr()
        argv = ["evaluate", "mdm_perov5", "--samples", str(out), "--checkpoint", str(work)]
        assert main([*argv, *_as_config(MDM_TINY)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["num"] == 8
    comps = [Composition(line) for line in out.read_text().splitlines()]
    assert len(comps) == 8
    assert {el.symbol for c in comps for el in c} <= ELEMENTS


@pytest.mark.parametrize("name", ["cdvae_perov5", "pfgmpp_perov5", "flow_perov5"])
def test_every_cdvae_coordinate_process_builds_from_a_cif_folder(name, cif_dir):
    """CDVAE's three coordinate processes (score, PFGM++ kernel, torus flow) on a user's
    folder: sized by the data, element mask set, and the training loss traces (shapes
    only, nothing compiled) to a scalar."""
    from flax import nnx

    cfg = load_recipe(name)[0]
    tiny = dict(latent_dim=8, hidden_dim=8, enc_hidden=8, enc_blocks=1, dec_hidden=8)
    cfg = dataclasses.replace(cfg, dataset=str(cif_dir), dec_blocks=1, **tiny)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the broken file's warning (tested above)
        method = cfg.build()
    assert method.config.max_atoms == 8 and method.type_mask.sum() == len(ELEMENTS)
    batch = {k: jnp.asarray(v) for k, v in method.loader().batch(0).items()}
    graphdef, state = nnx.split(nnx.eval_shape(lambda: method.init_model(jax.random.PRNGKey(0))))

    def loss(state):
        return method.loss_fn(nnx.merge(graphdef, state), batch, jax.random.PRNGKey(1))[0]

    assert jax.eval_shape(loss, state).shape == ()
