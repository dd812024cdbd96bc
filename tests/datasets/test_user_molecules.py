"""A user's own molecule file (``--dataset PATH``): the loader of
:func:`genmodels.datasets.molecules.load_user_molecules` and the task built from it.

Tiny files written into ``tmp_path``; the conversion cache goes to ``tmp_path`` too."""

import gzip
import math
import warnings

import numpy as np
import pytest
from rdkit import Chem

from genmodels.datasets import molecules as mdata
from genmodels.datasets.molecules import (
    load_user_molecules,
    read_user_smiles,
    user_molecule_vocab,
)
from genmodels.datasets.user import UserData, split_indices
from genmodels.errors import DataError, MissingFileError, UsageError
from genmodels.models.tasks.molecules import MoleculeTask, molecule_net, molecule_vocab
from genmodels.nets.graph import GDSS_NET_CONFIGS

# heavy atoms: 3, 6, 4, 4, 14, 5, 6, 9, 6, 10
GOOD = [
    "CCO",
    "c1ccncc1",
    "ClCCBr",
    "CS(C)=O",
    "CC(=O)Nc1ccc(O)cc1OCC",
    "OC(=O)CF",
    "CC[N+](C)(C)C",
    "CC(=O)OC(C)(C)CO",
    "C1CCCCC1",
    "O=C(O)c1ccccc1N",
]
ELEMENTS = ("C", "N", "O", "F", "S", "Cl", "Br")  # by atomic number: 6, 7, 8, 9, 16, 17, 35


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))


def heavy(smiles: str) -> int:
    return Chem.MolFromSmiles(smiles).GetNumHeavyAtoms()


def write_smi(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def load_quiet(path, data=None):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ds = load_user_molecules(path, data)
    return ds, [str(x.message) for x in w if "skipped" in str(x.message)]


def test_vocabulary_and_size_come_from_the_file(tmp_path):
    path = write_smi(tmp_path / "mols.smi", GOOD)
    ds, warned = load_quiet(path)
    assert ds.domain.atoms == ELEMENTS
    assert ds.domain.max_atoms == max(heavy(s) for s in GOOD) == 14
    assert len(ds) == len(GOOD) and not warned and ds.skipped == {}
    assert user_molecule_vocab(path) == (ELEMENTS, 14)
    # canonical SMILES (charges kept) of every molecule, in file order
    assert ds.smiles == [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in GOOD]
    # the arrays hold each molecule's heavy atoms and only the vocabulary's classes
    assert list(ds.num_atoms) == [heavy(s) for s in GOOD]
    types, bonds = ds.arrays()
    assert types.shape == (len(GOOD), 14) and bonds.shape == (len(GOOD), 14, 14)
    assert set(np.unique(types[types >= 0])) == set(range(len(ELEMENTS)))
    # the elements of each molecule come back from its classes
    for k, s in enumerate(GOOD):
        want = sorted(a.GetSymbol() for a in Chem.MolFromSmiles(s).GetAtoms())
        assert sorted(ELEMENTS[t] for t in types[k] if t >= 0) == want


def test_vocabulary_is_only_what_the_file_holds(tmp_path):
    path = write_smi(tmp_path / "small.smi", ["CCO", "OCCO", "CC=O"])
    ds, _ = load_quiet(path)
    assert ds.domain.atoms == ("C", "O") and ds.domain.max_atoms == 4


def test_skipped_rows_are_counted_and_named_by_line(tmp_path):
    lines = [
        "# my molecules",  # 1: comment
        "smiles name",  # 2: header
        "CCO ethanol",  # 3: a name after the SMILES
        "",  # 4: blank
        "C1CC broken-ring",  # 5: bad
        "c1ccncc1\tpyridine",  # 6
        "not_a_smiles",  # 7: bad
        "CC(=O)Nc1ccc(O)cc1OCC",  # 8: 14 heavy atoms
        "OC(=O)CF",  # 9
    ]
    path = write_smi(tmp_path / "mixed.smi", lines)
    ds, warned = load_quiet(path)
    assert len(ds) == 4 and ds.skipped == {"invalid SMILES": 2}
    assert len(warned) == 1
    assert f"{path}: skipped 2 of 6 molecules (invalid SMILES: lines 5, 7)" in warned[0]
    assert read_user_smiles(path)[1] == [3, 5, 6, 7, 8, 9]

    # an explicit --max-atoms skips the larger ones, named in the same one warning
    ds, warned = load_quiet(path, UserData(max_atoms=6))
    assert ds.domain.max_atoms == 6 and len(ds) == 3
    assert ds.skipped == {"invalid SMILES": 2, "more than 6 heavy atoms": 1}
    assert len(warned) == 1 and "more than 6 heavy atoms: line 8" in warned[0]
    assert "invalid SMILES: lines 5, 7" in warned[0]

    # the warning is repeated on a load from the cache
    _, again = load_quiet(path, UserData(max_atoms=6))
    assert again == warned


def test_no_good_row_is_one_line_data_error(tmp_path):
    path = write_smi(tmp_path / "bad.smi", ["xyz", "C1CC", "((("])
    with pytest.raises(DataError) as e:
        load_user_molecules(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "lines 1, 2, 3" in msg
    with pytest.raises(DataError, match="no molecule"):
        MoleculeTask(str(path))
    empty = tmp_path / "empty.smi"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_user_molecules(empty)
    write_smi(empty, ["# only a comment", ""])
    with pytest.raises(DataError, match="holds no SMILES"):
        load_user_molecules(empty)
    with pytest.raises(MissingFileError):
        load_user_molecules(tmp_path / "missing.smi")
    with pytest.raises(UsageError):
        load_user_molecules(empty, UserData(max_atoms=500))


def test_split_is_deterministic_and_follows_the_options(tmp_path):
    path = write_smi(tmp_path / "mols.smi", GOOD * 3)  # 30 molecules
    a, _ = load_quiet(path)
    b, _ = load_quiet(path)
    np.testing.assert_array_equal(a.train_idx, b.train_idx)
    np.testing.assert_array_equal(a.test_idx, b.test_idx)
    assert len(a.test_idx) == math.ceil(30 * 0.1) and len(a.train_idx) == 27
    tr, te = split_indices(30, 0.1, 0)
    np.testing.assert_array_equal(a.train_idx, tr)
    np.testing.assert_array_equal(a.test_idx, te)
    assert sorted(np.concatenate([a.train_idx, a.test_idx])) == list(range(30))
    assert a.test_smiles == [a.smiles[i] for i in te]

    c, _ = load_quiet(path, UserData(test_fraction=0.3, split_seed=5))
    assert len(c.test_idx) == 9
    np.testing.assert_array_equal(c.test_idx, split_indices(30, 0.3, 5)[1])
    # the split is over the good molecules only
    write_smi(tmp_path / "some_bad.smi", ["bad(", *GOOD[:5], "bad)", *GOOD[5:]])
    d, _ = load_quiet(tmp_path / "some_bad.smi")
    assert len(d) == 10 and len(d.train_idx) + len(d.test_idx) == 10
    with pytest.raises(DataError, match="at least 2"), pytest.warns(UserWarning, match="line 2"):
        load_user_molecules(write_smi(tmp_path / "one.smi", ["CCO", "bad("]))


def test_train_and_test_files(tmp_path):
    train = write_smi(tmp_path / "train.smi", GOOD)
    # P and I are not in the training vocabulary; the 15-atom molecule is too large
    test = write_smi(tmp_path / "test.smi", ["CCN", "CP(C)C", "OCC(=O)O", "CI", "C" * 15])
    data = UserData(test_file=str(test))
    ds, warned = load_quiet(train, data)
    assert ds.domain.atoms == ELEMENTS and ds.domain.max_atoms == 14
    assert len(ds.train_idx) == len(GOOD) and len(ds.test_idx) == 2
    assert ds.test_smiles == ["CCN", "O=C(O)CO"]
    assert ds.train_smiles == [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in GOOD]
    assert ds.skipped == {
        "test: element outside the vocabulary": 2,
        "test: more than 14 heavy atoms": 1,
    }
    assert len(warned) == 1 and "lines 2, 4" in warned[0] and "line 5" in warned[0]
    # the test molecules' arrays decode to themselves
    types, _ = ds.arrays(ds.test_idx)
    assert [ELEMENTS[t] for t in types[0] if t >= 0] == ["C", "C", "N"]

    # --train-file: vocabulary from it, the --dataset file is the test split
    other = write_smi(tmp_path / "other.smi", ["CCO", "CCCl"])
    ds, _ = load_quiet(other, UserData(train_file=str(train)))
    assert ds.domain.atoms == ELEMENTS and len(ds.train_idx) == 10 and len(ds.test_idx) == 2
    # a test file with no molecule that fits: one-line error naming it
    bad_test = write_smi(tmp_path / "bad_test.smi", ["CP", "CI"])
    with pytest.raises(DataError, match="bad_test.smi: no molecule with the training elements"):
        load_user_molecules(train, UserData(test_file=str(bad_test)))


def test_csv_column_detection(tmp_path):
    rows = ["id,Canonical_SMILES,score", "a,CCO,1.0", "b,bad(,2.0", "", "c,c1ccncc1,3.0", "d,,4"]
    path = tmp_path / "mols.csv"
    path.write_text("\n".join(rows) + "\n")
    smiles, lines = read_user_smiles(path)
    assert smiles == ["CCO", "bad(", "c1ccncc1", ""] and lines == [2, 3, 5, 6]
    ds, warned = load_quiet(path)
    assert ds.domain.atoms == ("C", "N", "O") and len(ds) == 2
    assert "skipped 2 of 4 molecules (invalid SMILES: lines 3, 6)" in warned[0]

    # an explicit column, case-insensitive; gzip
    two = tmp_path / "two.csv.gz"
    with gzip.open(two, "wt") as f:
        f.write("name,SMILES,other_smiles\nx,CCO,CCCCCl\ny,CCN,CCCBr\n")
    ds, _ = load_quiet(two)
    assert ds.domain.atoms == ("C", "N", "O")
    ds, _ = load_quiet(two, UserData(smiles_column="OTHER_SMILES"))
    assert ds.domain.atoms == ("C", "Cl", "Br")

    none = tmp_path / "none.csv"
    none.write_text("id,structure\n1,CCO\n")
    with pytest.raises(DataError, match=r"no column named like \"smiles\" \(columns: 'id', "):
        load_user_molecules(none)
    with pytest.raises(DataError, match="no column 'mol'"):
        load_user_molecules(two, UserData(smiles_column="mol"))


def test_vocab_is_cheap_after_the_first_conversion(tmp_path, monkeypatch):
    path = write_smi(tmp_path / "mols.smi", GOOD)
    assert user_molecule_vocab(path) == (ELEMENTS, 14)

    def fail(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr(mdata, "_convert", fail)
    assert user_molecule_vocab(path) == (ELEMENTS, 14)
    load_quiet(path)
    # another option is another conversion
    with pytest.raises(AssertionError, match="converted again"):
        user_molecule_vocab(path, UserData(max_atoms=5))


def test_task_from_a_path(tmp_path):
    path = str(write_smi(tmp_path / "mols.smi", GOOD * 2))
    task = MoleculeTask(path, data=UserData(test_fraction=0.25))
    assert (task.num_atom_types, task.max_atoms) == (7, 14) == molecule_vocab(path)
    assert task.dims == (14, 7) and task.shapes(2) == {"x": (2, 14, 7), "adj": (2, 14, 14)}
    train, test = task.splits
    assert len(test) == 5 and len(train) == 15
    assert task.train_arrays()["types"].shape == (15, 14)
    # the GDSS network is sized from the file; a benchmark keeps the recipe's sizes
    net = GDSS_NET_CONFIGS["QM9"]
    sized = molecule_net(net, path, UserData())
    assert (sized.max_feat_num, sized.max_node_num) == (7, 14) and sized.depth == net.depth
    assert molecule_net(net, "qm9", UserData()) is net
    with pytest.raises(UsageError, match="unknown molecule data set"):
        MoleculeTask("qm10")
    g6 = tmp_path / "graphs.g6"
    g6.write_text("A_\n")
    with pytest.raises(DataError, match="holds graphs"):
        MoleculeTask(str(g6))


def test_metrics_use_the_users_splits(tmp_path, monkeypatch):
    """Novelty against the file's training split; the NSPDK reference of its test split is
    cached by the split's SMILES, so another split of the same file is another entry."""
    import genmodels.metrics.molecules as mm

    path = str(write_smi(tmp_path / "mols.smi", GOOD))
    task = MoleculeTask(path, data=UserData(test_fraction=0.2), eval_fcd=False)
    train, test = task.splits
    assert len(test) == 2 and not set(test) & set(train)
    out = task.evaluate([train[0], test[0], "CCCCCCCCCCCl"])
    assert out["novelty"] == pytest.approx(2 / 3) and np.isfinite(out["nspdk"])
    ref = task.reference_stats("test")["nspdk"]

    def fail(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(mm, "nspdk_mean_embedding", fail)
    same = MoleculeTask(path, data=UserData(test_fraction=0.2), eval_fcd=False)
    assert same.reference_stats("test")["nspdk"] == ref  # from the disk cache
    other = MoleculeTask(path, data=UserData(test_fraction=0.2, split_seed=3), eval_fcd=False)
    assert other.splits[1] != test
    with pytest.raises(AssertionError, match="recomputed"):
        other.reference_stats("test")
