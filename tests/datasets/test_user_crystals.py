"""A user's own crystals (``--dataset PATH``): a folder of CIF files, one multi-block CIF
file, a CDVAE-style csv with a property; skipped structures named by file and block; the
split, element set and sizes derived from the data; the parse cache."""

import csv
import re
import warnings

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

import genmodels.datasets.crystals as dc
from genmodels.datasets.crystals import load_user_crystals
from genmodels.datasets.user import UserData, split_indices
from genmodels.errors import DataError, MissingFileError
from genmodels.models.tasks.compositions import CompositionTask
from genmodels.models.tasks.crystals import CrystalTask

# (A, B, X, a) cubic perovskites ABX3 (5 atoms) and (A, B, a) rock salts (8-atom cells)
PEROVSKITES = [
    ("Sr", "Ti", "O", 3.9), ("Ba", "Ti", "O", 4.0), ("Ca", "Zr", "O", 4.1),
    ("K", "Nb", "O", 4.0), ("Sr", "Zr", "O", 4.1), ("Ba", "Zr", "O", 4.2),
    ("La", "Al", "O", 3.8), ("Cs", "Pb", "I", 6.3),
]  # fmt: skip
ROCKSALTS = [("Na", "Cl", 5.6), ("Mg", "O", 4.2)]


def perovskite(a, b, x, length):
    pos = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return Structure(Lattice.cubic(length), [a, b, x, x, x], pos)


def rocksalt(a, b, length):
    fcc = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    pos = np.concatenate([fcc, (fcc + 0.5) % 1.0])
    return Structure(Lattice.cubic(length), [a] * 4 + [b] * 4, pos)


def structures() -> list[Structure]:
    return [perovskite(*p) for p in PEROVSKITES] + [rocksalt(*r) for r in ROCKSALTS]


def elements_of(structs) -> tuple[int, ...]:
    return tuple(sorted({int(z) for s in structs for z in s.atomic_numbers}))


BAD_CIF = "data_broken\n_cell_length_a 3.0\n_cell_length_b oops\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(d))
    return d


@pytest.fixture
def cif_dir(tmp_path):
    """10 good CIF files (c00..c09), one malformed, one binary, one README (ignored)."""
    d = tmp_path / "cifs"
    (d / "sub").mkdir(parents=True)
    for i, s in enumerate(structures()):
        CifWriter(s).write_file((d / "sub" if i == 9 else d) / f"c{i:02d}.cif")
    (d / "zz_broken.cif").write_text(BAD_CIF)
    (d / "zz_binary.cif").write_bytes(b"\xff\xfe\x00\x01 not text")
    (d / "README.txt").write_text("my crystals\n")
    return d


def _load_all(path, data=UserData()):
    return [load_user_crystals(path, data, s, progress=False) for s in ("train", "test")]


def test_folder_of_cifs_split_skips_and_elements(cache, cif_dir):
    with pytest.warns(UserWarning) as rec:
        train, test = _load_all(cif_dir)
    msgs = [str(w.message) for w in rec if "skipped" in str(w.message)]
    assert len(msgs) == 1  # one warning for the whole folder, given once
    assert "skipped 2 structure(s)" in msgs[0]
    assert "zz_broken.cif" in msgs[0] and "zz_binary.cif" in msgs[0]
    assert train.num_skipped == test.num_skipped == 2
    # the deterministic split of the 10 good crystals (files in sorted path order)
    ids = [f"c{i:02d}.cif" for i in range(9)] + ["sub/c09.cif"]
    tr, te = split_indices(10, 0.1, 0)
    assert list(train.material_ids) == [ids[i] for i in tr]
    assert list(test.material_ids) == [ids[i] for i in te]
    assert len(train) == 9 and len(test) == 1
    # canonical cells: 5-atom perovskites, 8-atom conventional rock salts
    by_id = dict(zip(train.material_ids, train.arrays.num_atoms))
    by_id.update(zip(test.material_ids, test.arrays.num_atoms))
    assert [by_id[i] for i in ids] == [5] * 8 + [8] * 2
    assert np.isnan(train.properties).all()
    # the val split is the test split
    val = load_user_crystals(cif_dir, UserData(), "val", progress=False)
    assert list(val.material_ids) == list(test.material_ids)
    # the task: its elements and padding come from the data, it trains on "train"
    task = CrystalTask(str(cif_dir), max_atoms=20, train_split="val")
    assert task.elements == elements_of(structures())
    assert task.domain.max_atoms == 8 and task.train_split == "train"
    assert task.train_arrays()["types"].shape == (9, 8)


def test_split_determinism_and_options(cache, cif_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = _load_all(cif_dir, UserData(test_fraction=0.3, split_seed=7))
        b = _load_all(cif_dir, UserData(test_fraction=0.3, split_seed=7))
        c = _load_all(cif_dir, UserData(test_fraction=0.3, split_seed=8))
    assert [list(x.material_ids) for x in a] == [list(x.material_ids) for x in b]
    assert len(a[1]) == 3 and len(a[0]) == 7  # ceil(10 * 0.3)
    assert set(a[0].material_ids).isdisjoint(a[1].material_ids)
    assert list(a[1].material_ids) != list(c[1].material_ids)
    np.testing.assert_array_equal(a[0].arrays.frac, b[0].arrays.frac)


def test_max_atoms_skips_and_counts_larger_cells(cache, cif_dir):
    with pytest.warns(UserWarning, match=r"skipped 2 crystal\(s\) with more than --max-atoms 5"):
        train, test = _load_all(cif_dir, UserData(max_atoms=5))
    assert len(train) + len(test) == 8
    assert train.num_skipped == 4  # 2 unreadable + 2 too large
    assert CrystalTask(str(cif_dir), 20, data=UserData(max_atoms=5)).domain.max_atoms == 5
    with pytest.raises(DataError, match="no crystal has at most --max-atoms 4"):
        load_user_crystals(cif_dir, UserData(max_atoms=4), "train", progress=False)


def test_one_multi_block_cif_names_the_bad_block(cache, tmp_path):
    structs = structures()[:6]
    blocks = [str(CifWriter(s)).replace("data_", f"data_x{i}_", 1) for i, s in enumerate(structs)]
    blocks.insert(3, BAD_CIF)
    path = tmp_path / "many.cif"
    path.write_text("# my crystals\n" + "\n".join(blocks))
    with pytest.warns(
        UserWarning, match=r"many.cif: skipped 1 structure\(s\).*block 3 \(data_broken\)"
    ):
        train, test = _load_all(path)
    assert len(train) + len(test) == 6 and train.num_skipped == 1
    names = [re.search(r"^data_(\S+)", b, re.M).group(1) for b in blocks if b is not BAD_CIF]
    assert sorted([*train.material_ids, *test.material_ids]) == sorted(names)
    task = CrystalTask(str(path), 20)
    assert task.elements == elements_of(structs) and task.domain.max_atoms == 5


def _write_csv(path, structs, bad_rows=()):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "material_id", "cif", "band_gap", "formula"])
        for i, s in enumerate(structs):
            cif = BAD_CIF if i in bad_rows else str(CifWriter(s))
            w.writerow([i, f"m-{i}", cif, 0.5 * i, s.composition.reduced_formula])


def test_csv_with_property(cache, tmp_path):
    path = tmp_path / "mine.csv"
    _write_csv(path, structures(), bad_rows=(4,))
    with pytest.warns(UserWarning, match=r"skipped 1 row\(s\).*row 4 \(material_id 'm-4'\)"):
        train, test = _load_all(path, UserData(property="band_gap"))
    got = dict(
        zip([*train.material_ids, *test.material_ids], [*train.properties, *test.properties])
    )
    assert got == {f"m-{i}": 0.5 * i for i in range(10) if i != 4}
    # no --property: NaN properties; an unknown column, or --property on CIFs: DataError
    plain = load_user_crystals(path, UserData(), "train", progress=False)
    assert np.isnan(plain.properties).all() and len(plain) == len(train)
    with pytest.raises(DataError, match="no column 'gap'"):
        load_user_crystals(path, UserData(property="gap"), "train", progress=False)
    cifs = tmp_path / "one.cif"
    CifWriter(structures()[0]).write_file(cifs)
    with pytest.raises(DataError, match="--property band_gap: .* is not a csv"):
        load_user_crystals(cifs, UserData(property="band_gap"), "train", progress=False)
    # the task trains on the property, standardized with the training split's statistics
    task = CrystalTask(str(path), 20, data=UserData(property="band_gap"))
    stats = task.scaler_stats(1e-5)
    np.testing.assert_allclose(stats["property_mean"], train.properties.mean(), rtol=1e-6)


def test_train_and_test_files(cache, tmp_path, cif_dir):
    other = tmp_path / "test.cif"
    other.write_text("\n".join(str(CifWriter(s)) for s in structures()[:3]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, test = _load_all(cif_dir, UserData(test_file=str(other)))
    assert len(train) == 10 and len(test) == 3  # the folder is all training data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, test = _load_all(other, UserData(train_file=str(cif_dir)))
    assert len(train) == 10 and len(test) == 3


def test_nothing_good_and_missing(cache, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "a.cif").write_text(BAD_CIF)
    (d / "b.cif").write_text("")
    with pytest.raises(DataError, match=r"no crystal could be parsed \(2 structures"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_user_crystals(d, UserData(), "train", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .cif file"):
        load_user_crystals(tmp_path / "empty", UserData(), "train", progress=False)
    with pytest.raises(MissingFileError):
        load_user_crystals(tmp_path / "nope.cif", UserData(), "train", progress=False)
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("material_id,cif\nm1,not a cif\n")
    with pytest.raises(DataError, match="no crystal could be parsed"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_user_crystals(csv_path, UserData(), "train", progress=False)


def test_parse_is_cached_by_checksum(cache, cif_dir, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = _load_all(cif_dir)
    assert len(list((cache / "crystals").glob("user-cifs-all-*.npz"))) == 1
    monkeypatch.setattr(dc, "_USER_MEMO", {})  # a new process

    def boom(*a, **k):
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(dc, "_parse_jobs", boom)
    with pytest.warns(UserWarning, match="skipped 2 structure"):  # still reported
        again = _load_all(cif_dir)
    np.testing.assert_array_equal(again[0].arrays.frac, first[0].arrays.frac)
    # a changed file changes the checksum: parsed again
    CifWriter(rocksalt("K", "Br", 6.6)).write_file(cif_dir / "c10.cif")
    monkeypatch.setattr(dc, "_USER_MEMO", {})
    with pytest.raises(AssertionError, match="parsed again"):
        load_user_crystals(cif_dir, UserData(), "train", progress=False)


def test_composition_task_vocabulary_is_the_user_elements(cache, cif_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = CompositionTask(str(cif_dir), train_split="val")
        want = elements_of(structures())
        from pymatgen.core import Element

        assert task.elements == tuple(Element.from_Z(z).symbol for z in want)
        assert task.train_split == "train" and task.max_atoms == 8
        types = task.train_arrays()["types"]
        assert types.shape == (9, 8) and types.max() < len(want)
