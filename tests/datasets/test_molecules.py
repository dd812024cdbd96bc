"""Molecule datasets: QM9 rows and split convention, ZINC250k loader on a fixture, MOSES."""

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from genmodels.datasets import registry
from genmodels.datasets.molecules import (
    MOSES_MAX_ATOMS,
    load_molecule_csv,
    load_moses,
    load_qm9,
    load_zinc250k,
    moses_smiles,
    read_smiles_column,
    split_rows,
)
from genmodels.domains.molecules import MOSES_ATOMS, ZINC_ATOMS, MoleculeDomain, mol_to_graph

DATA = Path(os.environ.get("GENMODELS_DATA_DIR", "data"))


def _need(*rel):
    for r in rel:
        if not (DATA / r).exists():
            pytest.skip(f"{DATA / r} not available")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(d))
    return d


def test_qm9_rows_are_gdb_order_and_split_is_one_based():
    """The csv is in GDB-9 order (row i = gdb_{i+1}) and the split ids are 1-based GDB ids.

    The first eight QM9 records are methane, ammonia, water, acetylene, hydrogen cyanide,
    formaldehyde, ethane and methanol (gdb_1..gdb_8). The split's smallest id, "000006",
    is therefore formaldehyde at row 5 with the default offset, and ethane at row 6 with
    GDSS's offset 0.
    """
    _need("graphs/DIG/qm9.csv", "graphs/valid_idx_qm9.json")
    rows = read_smiles_column(registry.fetch("qm9", "graphs/DIG/qm9.csv"), "smiles")
    assert len(rows) == 133885
    first = [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in rows[:8]]
    assert first == ["C", "N", "O", "C#C", "C#N", "C=O", "CC", "CO"]
    with open(registry.fetch("qm9", "graphs/valid_idx_qm9.json")) as f:
        ids = json.load(f)["valid_idxs"]
    assert len(ids) == 13082 and len(set(ids)) == 13082
    assert all(len(i) == 6 and i.isdigit() for i in ids)  # dsgdb9nsd_XXXXXX numbering
    test_rows = split_rows(ids, len(rows))
    assert test_rows.min() == 5 and test_rows.max() == 133840
    assert rows[test_rows.min()] == "C=O"  # id 000006 = gdb_6, formaldehyde
    gdss_rows = split_rows(ids, len(rows), index_offset=0)
    np.testing.assert_array_equal(gdss_rows, test_rows + 1)
    assert rows[gdss_rows.min()] == "CC"
    with pytest.raises(registry.DatasetError, match="outside"):
        split_rows(["000000"], len(rows))


@pytest.mark.slow  # converting all of QM9 takes 1-4 min the first time (then it is cached)
def test_load_qm9_counts_split_and_cache():
    _need("graphs/DIG/qm9.csv", "graphs/valid_idx_qm9.json")
    ds = load_qm9()
    assert len(ds) == 133885 and ds.skipped == {}
    assert len(ds.test_idx) == 13082 and len(ds.train_idx) == 133885 - 13082
    assert len(set(ds.test_idx.tolist()) & set(ds.train_idx.tolist())) == 0
    with open(registry.fetch("qm9", "graphs/valid_idx_qm9.json")) as f:
        ids = [int(i) for i in json.load(f)["valid_idxs"]]
    np.testing.assert_array_equal(ds.rows[ds.test_idx], np.asarray(ids) - 1)
    assert ds.num_atoms.max() == 9 and ds.num_atoms.min() == 1
    # stored arrays and SMILES match a fresh conversion of the same rows
    rows = read_smiles_column(registry.fetch("qm9", "graphs/DIG/qm9.csv"))
    pick = ds.test_idx[:50]
    types, bonds = ds.arrays(pick)
    for k, p in enumerate(pick):
        s = rows[ds.rows[p]]
        assert ds.smiles[p] == Chem.MolToSmiles(Chem.MolFromSmiles(s))
        t, b = mol_to_graph(s, ds.domain.atoms)
        np.testing.assert_array_equal(types[k, : len(t)], t)
        np.testing.assert_array_equal(bonds[k, : len(t), : len(t)], b)
    # second load is a cache hit (under the cache folder, never the data folder)
    t0 = time.perf_counter()
    again = load_qm9()
    assert time.perf_counter() - t0 < 10.0
    assert again.smiles == ds.smiles
    assert list(registry.cache_dir().glob("molecules/qm9-*.npz"))
    gdss = load_qm9(index_offset=0)
    np.testing.assert_array_equal(gdss.rows[gdss.test_idx], np.asarray(ids))


def _write_zinc_fixture(root: Path) -> list[str]:
    """A tiny ZINC250k-format csv: unnamed index column, quoted SMILES with a newline."""
    big = "C" * 39  # 39 heavy atoms > 38
    smiles = [
        "CC(C)(C)c1ccc2occ(CC(=O)Nc3ccccc3F)c2c1",
        "C[C@@H]1CC(Nc2cncc(-c3nncn3C)c2)C[C@@H](C)C1",
        "not a smiles",
        "N#Cc1ccc(-c2ccc(O[C@@H](C(=O)N3CCCC3)c3ccccc3)cc2)cc1",
        "CC[Si](C)(C)C",  # Si is outside the ZINC vocabulary
        big,
        "O=C(Nc1ccc(Br)cc1)c1ccc(Cl)c(I)c1",
    ]
    lines = [",smiles,logP,qed,SAS"]
    for i, s in enumerate(smiles):
        lines.append(f'{i},"{s}\n",1.0,0.5,2.0')
    path = root / "graphs" / "zinc250k.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return smiles


def test_zinc250k_loader_on_fixture(tmp_path, cache):
    smiles = _write_zinc_fixture(tmp_path)
    path = tmp_path / "graphs" / "zinc250k.csv"
    assert read_smiles_column(path)[0] == smiles[0]  # newline stripped, index column ignored
    domain = MoleculeDomain(ZINC_ATOMS, 38)
    with pytest.warns(UserWarning) as rec:
        ds = load_molecule_csv(path, domain, name="zinc250k", test_ids=[2, 7])
    text = " | ".join(str(w.message) for w in rec)
    assert "zinc250k.csv" in text and "invalid SMILES" in text and "rows (0-based) 2" in text
    assert "outside the vocabulary" in text and "more than 38 heavy atoms" in text
    assert ds.skipped == {
        "invalid SMILES": 1,
        "element outside the vocabulary": 1,
        "more than 38 heavy atoms": 1,
    }
    assert len(ds) == 4
    np.testing.assert_array_equal(ds.rows, [0, 1, 3, 6])
    # ids 2 and 7 are 1-based rows 1 and 6
    assert ds.test_smiles == [Chem.MolToSmiles(Chem.MolFromSmiles(smiles[i])) for i in (1, 6)]
    assert ds.train_smiles == [Chem.MolToSmiles(Chem.MolFromSmiles(smiles[i])) for i in (0, 3)]
    assert "@" in ds.test_smiles[0]  # canonical SMILES keep stereo, the graphs do not
    state, ctx = ds.batch([0, 3])
    assert state["x"].shape == (2, 38, 9)
    out = ds.domain.decode_smiles(state, ctx)[0]
    assert out == [Chem.MolToSmiles(Chem.MolFromSmiles(smiles[i])) for i in (0, 6)]
    # GDSS indexing: ids as 0-based rows; id 2 is the skipped row
    with pytest.warns(UserWarning):
        gdss = load_molecule_csv(path, domain, name="zinc250k", test_ids=[2, 6], index_offset=0)
    assert gdss.test_smiles == [ds.smiles[3]] and gdss.skipped["test_ids_skipped"] == 1
    # the cache is reused and the skip warnings are repeated
    files = list((cache / "molecules").glob("zinc250k-*.npz"))
    assert len(files) == 1
    with pytest.warns(UserWarning) as rec2:
        again = load_molecule_csv(path, domain, name="zinc250k", test_ids=[2, 7])
    assert [str(w.message) for w in rec2] == [str(w.message) for w in rec]
    assert again.smiles == ds.smiles
    np.testing.assert_array_equal(again.arrays()[1], ds.arrays()[1])
    assert list((cache / "molecules").glob("zinc250k-*.npz")) == files


def test_load_zinc250k_reads_registered_files(tmp_path, cache, monkeypatch):
    """``load_zinc250k`` finds the csv under the data folder and applies the real split."""
    _need("graphs/valid_idx_zinc250k.json")
    monkeypatch.setenv("GENMODELS_DATA_DIR", str(tmp_path))
    with pytest.raises(registry.DatasetError, match="zinc250k.csv is missing"):
        load_zinc250k()
    _write_zinc_fixture(tmp_path)
    shutil.copy(DATA / "graphs" / "valid_idx_zinc250k.json", tmp_path / "graphs")
    # the real split names rows up to 249,428: far beyond the 7-row fixture
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(registry.DatasetError, match="outside 0..6"):
            load_zinc250k()


def test_moses_counts_and_graphs(cache):
    _need("graphs/moses/train.csv.gz", "graphs/moses/test.csv.gz")
    assert len(moses_smiles("train")) == 1584663
    test = moses_smiles("test")
    assert len(test) == 176074
    ds = load_moses("test", limit=300)
    assert len(ds) == 300 and ds.skipped == {}
    assert ds.domain.atoms == MOSES_ATOMS and ds.num_atoms.max() <= MOSES_MAX_ATOMS
    assert ds.smiles == [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in test[:300]]
    assert len(ds.test_idx) == 0 and len(ds.train_idx) == 300
    with pytest.raises(registry.DatasetError):
        load_moses("valid")
