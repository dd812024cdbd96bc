"""Sample files of every task kind: good files round-trip; empty, binary, truncated,
wrong-suffix and wrong-kind files raise one :class:`DataError` line naming the file;
``evaluate`` refuses an unknown split before loading data (issue #22)."""

import gzip
import warnings

import networkx as nx
import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from genmodels.errors import DataError, UsageError
from genmodels.models.tasks.compositions import CompositionTask
from genmodels.models.tasks.crystals import CrystalTask
from genmodels.models.tasks.graphs import GraphTask
from genmodels.models.tasks.images import ImageTask
from genmodels.models.tasks.molecules import MoleculeTask
from genmodels.models.tasks.toy import ToyTask


def _perovskite() -> Structure:
    coords = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"], coords)


def _same(kind, a, b) -> bool:
    """Whether two samples of ``kind`` are equal (graphs: edge sets; crystals: species,
    lattice and coordinates to the CIF's precision)."""
    if a is None or b is None:
        return a is None and b is None
    if kind == "graphs":
        return nx.utils.graphs_equal(a, b)
    if kind == "crystals":
        return (
            a.atomic_numbers == b.atomic_numbers
            and np.allclose(a.lattice.parameters, b.lattice.parameters, atol=1e-6)
            and np.allclose(a.frac_coords, b.frac_coords, atol=1e-6)
        )
    return a == b


# kind -> (task factory, good samples, content of another kind under the right suffix)
KINDS = {
    "molecules": (
        lambda: MoleculeTask("qm9"),
        ["CCO", "", "c1ccccc1", "C#N"],
        b"Bw\nC~\nDQc\n",  # graph6 lines
    ),
    "graphs": (
        lambda: GraphTask("community_small", 6, 4),
        [nx.path_graph(3), None, nx.cycle_graph(5), nx.empty_graph(2)],
        b"CCO\nc1ccccc1\n",  # SMILES
    ),
    "crystals": (
        lambda: CrystalTask("perov_5", 20),
        [_perovskite(), None, _perovskite()],
        b"Ca1 Ti1 O3\nSr1 Ti1 O3\n",  # compositions
    ),
    "compositions": (
        lambda: CompositionTask("perov_5"),
        [Composition("CaTiO3"), Composition("Sr2TiO4")],
        b"CCO\nc1ccccc1\n",  # SMILES
    ),
    "images": (
        lambda: ImageTask("mnist", (4, 4, 1)),
        np.random.default_rng(0).integers(0, 256, (3, 4, 4, 1), dtype=np.uint8),
        None,  # wrong-kind npz: see test_npz_of_the_other_kind
    ),
    "toy": (
        lambda: ToyTask(modes=4, radius=2.0, std=0.1, train_size=8, eval_size=8),
        np.random.default_rng(1).normal(size=(5, 2)).astype(np.float32),
        None,
    ),
}
NPZ_KINDS = ("images", "toy")


@pytest.fixture(params=list(KINDS))
def kind(request):
    return request.param


def _task(kind):
    return KINDS[kind][0]()


def test_good_file_round_trips_exactly(kind, tmp_path):
    task, samples = _task(kind), KINDS[kind][1]
    assert task.sample_suffixes[0] == task.sample_suffix
    path = tmp_path / f"s{task.sample_suffix}"
    task.write_samples(samples, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # read_cif counts the failed-sample placeholder
        back = task.read_samples(path)
    if kind in NPZ_KINDS:
        assert back.dtype == samples.dtype
        np.testing.assert_array_equal(back, samples)
    else:
        assert len(back) == len(samples)
        assert all(_same(kind, a, b) for a, b in zip(samples, back))


def test_empty_file(kind, tmp_path):
    task = _task(kind)
    for suffix in task.sample_suffixes:
        path = tmp_path / f"empty{suffix}"
        path.write_bytes(b"")
        with pytest.raises(DataError, match=rf"empty{suffix} holds no samples"):
            task.read_samples(path)


def test_binary_file(kind, tmp_path):
    task = _task(kind)
    junk = bytes(np.random.default_rng(2).integers(0, 256, 512, dtype=np.uint8))
    for suffix in task.sample_suffixes:
        path = tmp_path / f"junk{suffix}"
        path.write_bytes(junk)
        with pytest.raises(DataError, match=rf"junk{suffix}") as err:
            task.read_samples(path)
        assert "\n" not in str(err.value) and "allow_pickle" not in str(err.value)


def test_wrong_suffix(kind, tmp_path):
    task = _task(kind)
    other = ".g6" if kind == "molecules" else ".smi"
    path = tmp_path / f"s{other}"
    path.write_text("CCO\n")
    accepted = "/".join(task.sample_suffixes)
    with pytest.raises(DataError) as err:
        task.read_samples(path)
    assert str(err.value).startswith(
        f"{path} is a {other} file; this recipe's samples are {accepted} ("
    )


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in NPZ_KINDS])
def test_text_of_another_kind(kind, tmp_path):
    task = _task(kind)
    path = tmp_path / f"other{task.sample_suffix}"
    path.write_bytes(KINDS[kind][2])
    with pytest.raises(DataError, match=rf"other{task.sample_suffix}") as err:
        task.read_samples(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", NPZ_KINDS)
def test_npz_of_the_other_kind(kind, tmp_path):
    other = "toy" if kind == "images" else "images"
    path = tmp_path / "other.npz"
    _task(other).write_samples(KINDS[other][1], path)
    key = "samples" if other == "toy" else "images"
    with pytest.raises(DataError, match=rf"other\.npz: no '\w+' array \(arrays found: {key}\)"):
        _task(kind).read_samples(path)


@pytest.mark.parametrize("kind", NPZ_KINDS)
def test_npz_with_an_object_array(kind, tmp_path):
    key = "images" if kind == "images" else "samples"
    path = tmp_path / "obj.npz"
    np.savez(path, **{key: np.array([1, "a", None], dtype=object)})
    with pytest.raises(DataError, match=rf"obj\.npz: array '{key}' holds Python objects") as err:
        _task(kind).read_samples(path)
    assert "allow_pickle" not in str(err.value)


@pytest.mark.parametrize("kind", NPZ_KINDS)
@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_npz(kind, keep, tmp_path):
    task = _task(kind)
    good = tmp_path / "good.npz"
    task.write_samples(KINDS[kind][1], good)
    data = good.read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match=r"cut\.npz is not a readable \.npz archive"):
        task.read_samples(path)


@pytest.mark.parametrize("kind", NPZ_KINDS)
def test_npz_with_no_rows(kind, tmp_path):
    path = tmp_path / "none.npz"
    shape = (0, 4, 4, 1) if kind == "images" else (0, 2)
    np.savez(path, **{"images" if kind == "images" else "samples": np.zeros(shape, np.uint8)})
    with pytest.raises(DataError, match=r"none\.npz holds no samples"):
        _task(kind).read_samples(path)


def test_missing_file_names_it(kind, tmp_path):
    task = _task(kind)
    with pytest.raises(FileNotFoundError, match=rf"nope{task.sample_suffix} does not exist"):
        task.read_samples(tmp_path / f"nope{task.sample_suffix}")


def test_bad_entries_in_a_good_file_are_kept_as_failed_samples(tmp_path):
    # an empty line (a failed sample) and a SMILES that parses but breaks valence rules
    path = tmp_path / "s.smi"
    path.write_text("CCO\n\nC(C)(C)(C)(C)C\n")
    assert _task("molecules").read_samples(path) == ["CCO", "", "C(C)(C)(C)(C)C"]
    # a file where every sample failed is still a sample file (validity 0, not an error)
    path.write_text("\n\n")
    assert _task("molecules").read_samples(path) == ["", ""]
    g6 = tmp_path / "s.g6"
    g6.write_text("\nBw\n")
    back = _task("graphs").read_samples(g6)
    assert back[0] is None and back[1].number_of_nodes() == 3
    cif = tmp_path / "s.cif"
    cif.write_text("data_0_failed\n")
    with pytest.warns(UserWarning, match="failed sample"):
        assert _task("crystals").read_samples(cif) == [None]


def test_molecule_csv_files(tmp_path):
    task = _task("molecules")
    path = tmp_path / "s.csv.gz"
    path.write_bytes(gzip.compress(b"idx,SMILES\n0,CCO\n1,\n"))
    assert task.read_samples(path) == ["CCO", ""]
    path.write_bytes(gzip.compress(b"idx,SMILES\n0,CCO\n")[:-6])  # truncated gzip
    with pytest.raises(DataError, match=r"s\.csv\.gz is not a readable csv"):
        task.read_samples(path)
    csv = tmp_path / "s.csv"
    csv.write_text("name,formula\na,CCO\n")
    with pytest.raises(DataError, match=r"s\.csv: no 'smiles' column \(header: 'name', 'formula'"):
        task.read_samples(csv)
    csv.write_text("smiles\nBw\nC~\n")
    with pytest.raises(DataError, match=r"no data row of .*s\.csv is a SMILES string"):
        task.read_samples(csv)


def test_unknown_split_is_refused_before_any_data_is_loaded(kind):
    task = _task(kind)
    assert task.eval_splits and "test" in task.eval_splits
    with pytest.raises(UsageError) as err:
        task.evaluate(KINDS[kind][1], split="banana")
    assert str(err.value) == f"unknown split 'banana'; choose one of {', '.join(task.eval_splits)}"
    # nothing was loaded: the lazily loaded data of each kind is still absent (toy data
    # is analytic)
    lazy = {"molecules": "data", "graphs": "splits", "images": "data"}.get(kind)
    assert lazy is None or lazy not in vars(task)
    assert not getattr(task, "_datasets", None)


def test_reference_split_raises_usage_error():
    from genmodels.models.tasks.base import reference_split

    assert reference_split(("tr", "te"), "train") == "tr"
    assert reference_split(("tr", "te"), "test") == "te"
    with pytest.raises(UsageError, match="unknown split 'val'; choose one of test, train"):
        reference_split(("tr", "te"), "val")


def test_every_recipe_declares_splits_and_suffixes():
    from genmodels.recipes import list_recipes, load_recipe

    names = list_recipes()
    assert names
    for name in names:
        method = load_recipe(name)[0].build()
        assert method.sample_suffixes[0] == method.sample_suffix, name
        assert "test" in method.eval_splits, name
        with pytest.raises(UsageError, match="unknown split 'banana'"):
            method.evaluate([], split="banana")
