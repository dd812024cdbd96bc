"""CDVAE crystal CSV loaders: real val/test files, cache, missing splits, mp_20 fixture."""

import csv

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

import genmodels.datasets.crystals as dc
from genmodels.datasets.crystals import CRYSTAL_DATASETS, load_crystals
from genmodels.datasets.registry import DatasetError, fetch
from genmodels.domains.crystals import CrystalDomain, canonical_structure


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(d))
    return d


def _rows(name, split, n):
    csv.field_size_limit(1 << 26)
    with open(fetch(name, f"crystals/{name}/{split}.csv"), newline="") as f:
        return list(csv.DictReader(f))[:n]


@pytest.mark.parametrize("name,split,n", [("perov_5", "val", 12), ("carbon_24", "test", 8)])
def test_real_split_parses_and_caches(cache, monkeypatch, name, split, n):
    ds = load_crystals(name, split, limit=n, progress=False)
    rows = _rows(name, split, n)
    assert len(ds) == n and ds.num_skipped == 0
    assert list(ds.material_ids) == [r["material_id"] for r in rows]
    np.testing.assert_allclose(ds.properties, [float(r[CRYSTAL_DATASETS[name]]) for r in rows])
    # Each crystal is CDVAE's canonical cell of the CSV's CIF.
    for i in (0, n - 1):
        want = canonical_structure(Structure.from_str(rows[i]["cif"], fmt="cif"))
        got = ds.arrays.structure(i)
        assert got.atomic_numbers == want.atomic_numbers
        np.testing.assert_allclose(got.lattice.parameters, want.lattice.parameters)
        np.testing.assert_allclose(got.frac_coords, want.frac_coords, atol=1e-12)
    counts = ds.arrays.num_atoms
    if name == "perov_5":
        assert np.all(counts == 5)
    else:
        assert counts.min() >= 6 and counts.max() <= 24
    # Cached under GENMODELS_CACHE_DIR, and the second load does not parse again.
    assert len(list((cache / "crystals").glob(f"{name}-{split}-*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(dc, "parse_crystal_csv", boom)
    again = load_crystals(name, split, limit=n, progress=False)
    np.testing.assert_array_equal(again.arrays.frac, ds.arrays.frac)
    np.testing.assert_array_equal(again.material_ids, ds.material_ids)
    # The arrays pad into the domain state directly.
    state, ctx = CrystalDomain(max_atoms=dc.CRYSTAL_MAX_ATOMS[name]).encode_arrays(ds.arrays)
    assert state["frac"].shape == (n, dc.CRYSTAL_MAX_ATOMS[name], 3)


def test_missing_split_and_unknown_names(cache):
    with pytest.raises(DatasetError, match=r"perov_5/train.csv is missing"):
        load_crystals("perov_5", "train")
    with pytest.raises(DatasetError, match="unknown crystal dataset"):
        load_crystals("perov_6", "val")
    with pytest.raises(DatasetError, match="unknown split"):
        load_crystals("perov_5", "valid")


def _mp20_csv(path, structures, props, bad_row=None):
    """A CSV in the mp_20 column layout; ``bad_row`` inserts a broken CIF at that position."""
    header = [
        "",
        "material_id",
        "formation_energy_per_atom",
        "band_gap",
        "pretty_formula",
        "e_above_hull",
        "elements",
        "cif",
        "spacegroup.number",
    ]
    rows = []
    for k, (s, p) in enumerate(zip(structures, props)):
        f = s.composition.reduced_formula
        rows.append([k, f"mp-{k}", p, 1.0, f, 0.0, "[]", str(CifWriter(s)), 225])
    if bad_row is not None:
        rows.insert(
            bad_row, [99, "mp-bad", -1.0, 0.0, "X", 0.0, "[]", "data_x\n_cell_length_a 1\n", 1]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _fixture_structures():
    nacl = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    si = Structure(
        Lattice.from_parameters(3.87, 3.87, 3.87, 60, 60, 60),
        ["Si", "Si"],
        [[0, 0, 0], [0.25, 0.25, 0.25]],
    )
    # A deliberately skewed cell, so the Niggli reduction has work to do.
    skew = Lattice(np.array([[4.0, 0, 0], [4.0, 4.0, 0], [0, 0, 4.0]]))
    po = Structure(skew, ["Po"], [[0.1, 0.2, 0.3]])
    return [nacl, si, po]


def test_mp20_fixture(tmp_path, cache, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("GENMODELS_DATA_DIR", str(data))
    structs = _fixture_structures()
    _mp20_csv(data / "crystals/mp_20/val.csv", structs, [-1.5, 0.0, 0.25], bad_row=1)
    with pytest.warns(UserWarning, match=r"skipped 1 row.*row 1 \(material_id 'mp-bad'\)"):
        ds = load_crystals("mp_20", "val", progress=False)
    assert len(ds) == 3 and ds.num_skipped == 1
    assert list(ds.material_ids) == ["mp-0", "mp-1", "mp-2"]
    np.testing.assert_allclose(ds.properties, [-1.5, 0.0, 0.25])
    np.testing.assert_array_equal(ds.arrays.num_atoms, [2, 2, 1])
    np.testing.assert_allclose(ds.arrays.lattice[2], [4.0, 4.0, 4.0, 90, 90, 90], atol=1e-8)
    # The cache remembers the skipped row and warns again.
    with pytest.warns(UserWarning, match="mp-bad"):
        load_crystals("mp_20", "val", progress=False)
    # A changed file is parsed again (the cache key is its sha256 and size).
    _mp20_csv(data / "crystals/mp_20/val.csv", structs[:2], [-1.5, 0.0])
    ds2 = load_crystals("mp_20", "val", progress=False)
    assert len(ds2) == 2 and ds2.num_skipped == 0
    # Nothing was written next to the data.
    assert sorted(p.name for p in (data / "crystals/mp_20").iterdir()) == ["val.csv"]


def test_mp20_missing_column(tmp_path, cache, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("GENMODELS_DATA_DIR", str(data))
    p = data / "crystals/mp_20/test.csv"
    p.parent.mkdir(parents=True)
    p.write_text(",material_id,cif\n0,mp-0,x\n")
    with pytest.raises(DatasetError, match="formation_energy_per_atom"):
        load_crystals("mp_20", "test", progress=False)


@pytest.mark.slow
def test_full_val_splits_with_workers(cache):
    for name, n in [("perov_5", 3787), ("carbon_24", 2032)]:
        ds = load_crystals(name, "val", num_workers=2, progress=False)
        assert len(ds) == n and ds.num_skipped == 0
        assert ds.arrays.num_atoms.max() <= dc.CRYSTAL_MAX_ATOMS[name]
