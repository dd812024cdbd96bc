"""The metric disk cache: hits, misses, corrupt files, atomic writes, and the molecule
task's reference statistics read back from it."""

from __future__ import annotations

import numpy as np
import pytest

from genmodels.metrics import cache as C


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path))
    return tmp_path / "metrics"


def _counting(arrays):
    calls = []

    def compute():
        calls.append(1)
        return arrays

    return compute, calls


def test_hit_returns_identical_arrays_without_computing(cache_dir):
    want = {"mu": np.random.default_rng(0).normal(size=7), "ids": np.arange(5, dtype=np.uint64)}
    compute, calls = _counting(want)
    first = C.cached_arrays("t", {"split": "test"}, compute, version=1)
    again = C.cached_arrays("t", {"split": "test"}, compute, version=1)
    assert len(calls) == 1
    for got in (first, again):
        assert set(got) == {"mu", "ids"}
        assert all(np.array_equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)
    assert [p.name for p in cache_dir.iterdir()] == [C.cache_path("t", {"split": "test"}, 1).name]


@pytest.mark.parametrize(
    "key, version",
    [
        ({"split": "test", "files": {"a.csv": "other-sha"}}, 1),
        ({"split": "train", "files": {"a.csv": "sha"}}, 1),
        ({"split": "test", "files": {"a.csv": "sha"}}, 2),  # same key, new version
    ],
)
def test_changed_key_or_version_recomputes(cache_dir, key, version):
    compute, calls = _counting({"x": np.zeros(3)})
    C.cached_arrays("t", {"split": "test", "files": {"a.csv": "sha"}}, compute, version=1)
    other, _ = _counting({"x": np.ones(3)})
    got = C.cached_arrays("t", key, lambda: calls.append(2) or other(), version=version)
    assert calls == [1, 2] and np.array_equal(got["x"], np.ones(3))
    assert len(list(cache_dir.glob("t-*.npz"))) == 2


def test_corrupt_file_is_recomputed_with_a_warning(cache_dir):
    compute, calls = _counting({"x": np.arange(4.0)})
    C.cached_arrays("t", {"k": 1}, compute, version=1)
    path = C.cache_path("t", {"k": 1}, 1)
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.warns(UserWarning, match="unreadable metric cache"):
        got = C.cached_arrays("t", {"k": 1}, compute, version=1)
    assert len(calls) == 2 and np.array_equal(got["x"], np.arange(4.0))
    assert np.array_equal(C.cached_arrays("t", {"k": 1}, compute, version=1)["x"], got["x"])
    assert len(calls) == 2  # rewritten intact


def test_file_for_another_key_is_not_trusted(cache_dir):
    compute, calls = _counting({"x": np.zeros(2)})
    C.cached_arrays("t", {"k": 1}, compute, version=1)
    C.cache_path("t", {"k": 1}, 1).rename(C.cache_path("t", {"k": 2}, 1))
    with pytest.warns(UserWarning, match="another key"):
        C.cached_arrays("t", {"k": 2}, compute, version=1)
    assert len(calls) == 2


def test_write_is_atomic_and_leaves_no_temporary_file(cache_dir, monkeypatch):
    C.cached_arrays("t", {"k": 1}, lambda: {"x": np.zeros(2)}, version=1)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(C.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        C.cached_arrays("t", {"k": 2}, lambda: {"x": np.ones(2)}, version=1)
    assert sorted(p.name for p in cache_dir.iterdir()) == [C.cache_path("t", {"k": 1}, 1).name]


def test_object_arrays_are_refused(cache_dir):
    with pytest.raises(TypeError, match="plain arrays"):
        C.cached_arrays("t", {}, lambda: {"x": np.array([{"a": 1}], dtype=object)}, version=1)
    assert not list(cache_dir.glob("*"))


def test_file_sha256_hashes_once_per_content(tmp_path, monkeypatch):
    calls = []
    real = C.sha256sum
    monkeypatch.setattr(C, "sha256sum", lambda p: calls.append(p) or real(p))
    f = tmp_path / "data.csv"
    f.write_text("smiles\nCCO\n")
    a, b = C.file_sha256(f), C.file_sha256(f)
    assert a == b == real(f) and len(calls) == 1
    f.write_text("smiles\nCCO\nCCN\n")  # new size and time: hashed again
    assert C.file_sha256(f) == real(f) != a and len(calls) == 2


def test_data_checksums_take_pins_and_hash_the_rest(tmp_path, monkeypatch):
    from genmodels.datasets.registry import REGISTRY

    monkeypatch.setenv("GENMODELS_DATA_DIR", str(tmp_path))
    card = REGISTRY["zinc250k"]
    pinned = {f.path: f.sha256 for f in card.files if f.sha256}
    unpinned = [f.path for f in card.files if not f.sha256]
    assert pinned and unpinned  # the card has both kinds
    got = C.data_checksums("zinc250k")
    assert all(got[p] == sha for p, sha in pinned.items())
    assert all(got[p] == "absent" for p in unpinned)
    (tmp_path / unpinned[0]).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / unpinned[0]).write_text("smiles\nCCO\n")
    assert C.data_checksums("zinc250k", unpinned)[unpinned[0]] == C.sha256sum(
        tmp_path / unpinned[0]
    )
    assert C.data_checksums("no such data set") == {}


# ------------------------------------------------------------------ molecule task


def _small_task(test):
    from genmodels.models.tasks.molecules import MoleculeTask

    task = MoleculeTask("qm9")
    task.__dict__["splits"] = (["CCO", "CCN", "CC=O"], list(test))  # no data set loaded
    return task


TEST = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "C1CC1", "OCC=O", "CC#N", "CCCl"]
SAMPLES = ["CCO", "CCCO", "c1ccncc1", "", "CC(C)O", "C=CC"]


def _no_reference_compute(mp, mm):
    def boom(*args, **kwargs):
        raise AssertionError("reference statistics recomputed despite the cache")

    mp.setattr(mm, "fcd_statistics", boom)
    mp.setattr(mm, "nspdk_mean_embedding", boom)


def test_molecule_reference_stats_come_from_the_disk_cache(cache_dir, monkeypatch, capsys):
    """ChemNet mocked (a deterministic stand-in; the real one: the slow test below)."""
    from types import SimpleNamespace

    from genmodels.metrics import molecules as mm

    calls = []

    def fake_chemnet(smiles, progress=None, **kwargs):
        calls.append(list(smiles))
        f = np.array([[len(s), s.count("C"), s.count("O"), s.count("c")] for s in smiles], float)
        return {"mu": f.mean(0), "sigma": np.cov(f.T) + np.eye(4)}

    monkeypatch.setattr(mm, "_import_fcd", lambda: SimpleNamespace(__version__="stub"))
    monkeypatch.setattr(mm, "fcd_statistics", fake_chemnet)
    m1 = _small_task(TEST).evaluate(SAMPLES)
    assert calls[0] == TEST and len(calls) == 2  # reference, then samples
    assert "NSPDK reference (qm9 test)" in capsys.readouterr().err
    assert {p.name.split("-")[0] for p in cache_dir.glob("*.npz")} == {"fcd", "nspdk"}
    ref = _small_task(TEST).reference_stats("test")
    assert "reference" not in capsys.readouterr().err  # no bar for cached statistics
    assert len(calls) == 2
    fresh = fake_chemnet(TEST)
    assert all(np.array_equal(ref["fcd"][k], fresh[k]) for k in ("mu", "sigma"))
    emb = mm.nspdk_mean_embedding(mm.mols_to_nx(TEST))
    assert list(ref["nspdk"].items()) == list(emb.items())  # same values, same order
    with monkeypatch.context() as mp:
        _no_reference_compute(mp, mm)
        ref2 = _small_task(TEST).reference_stats("test")
    assert all(np.array_equal(ref2["fcd"][k], ref["fcd"][k]) for k in ("mu", "sigma"))
    calls.clear()
    assert _small_task(TEST).evaluate(SAMPLES) == m1  # identical metrics, cached or not
    assert len(calls) == 1  # the samples only

    # another reference set (another data file, split or subset) is computed anew
    _small_task(TEST[:-1]).reference_stats("test")
    assert calls[-1] == TEST[:-1] and len(list(cache_dir.glob("fcd-ref-*.npz"))) == 2


@pytest.mark.slow  # imports torch and runs ChemNet: about 20 s on two busy cores
def test_chemnet_reference_stats_read_back_exactly(cache_dir, monkeypatch):
    pytest.importorskip("fcd")
    from genmodels.metrics import molecules as mm

    m1 = _small_task(TEST).evaluate(SAMPLES)
    ref = _small_task(TEST).reference_stats("test")
    fresh = mm.fcd_statistics(TEST)
    assert all(np.array_equal(ref["fcd"][k], fresh[k]) for k in ("mu", "sigma"))
    with monkeypatch.context() as mp:
        _no_reference_compute(mp, mm)
        assert _small_task(TEST).reference_stats("test")["fcd"]["sigma"].shape == (512, 512)
    assert _small_task(TEST).evaluate(SAMPLES) == m1


# ------------------------------------------------------------------ images and crystals


def test_image_reference_stats_are_keyed_by_the_data_checksums(cache_dir, monkeypatch):
    from genmodels.metrics import images as M

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(50, 6)).astype(np.float32)
    calls = []
    monkeypatch.setattr(M, "_load_split", lambda d, s: calls.append(s) or np.zeros((50, 2, 2, 1)))
    monkeypatch.setattr(M, "_features", lambda *a: feats)
    first = M.reference_stats("mnist", "train", "classifier", progress=False)
    again = M.reference_stats("mnist", "train", "classifier", progress=False)
    assert calls == ["train"]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    np.testing.assert_allclose(first[1], np.cov(feats.astype(np.float64), rowvar=False), atol=1e-6)
    monkeypatch.setattr(M, "data_checksums", lambda name: {"t10k-images": "another file"})
    M.reference_stats("mnist", "train", "classifier", progress=False)
    assert calls == ["train", "train"]


def test_crystal_fingerprints_cache_key_and_count(cache_dir, monkeypatch):
    from genmodels.metrics import crystals as mc

    calls = []

    def fake(structures, n_jobs=1, progress=True):
        calls.append(len(structures))
        sf = [None if s is None else np.full(3, float(s)) for s in structures]
        return sf, [None if s is None else np.full(2, -float(s)) for s in structures]

    monkeypatch.setattr(mc, "fingerprints", fake)
    structs = [1, None, 2]  # stand-ins: only ``fingerprints`` looks at them
    first = mc.fingerprints_cached(structs, {"files": {"test.csv": "a"}})
    again = mc.fingerprints_cached(structs, {"files": {"test.csv": "a"}})
    assert calls == [3] and again[0][1] is None and again[1][1] is None
    for a, b in zip(first[0] + first[1], again[0] + again[1]):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert np.array_equal(again[0][2], np.full(3, 2.0))
    mc.fingerprints_cached(structs, {"files": {"test.csv": "b"}})  # another data file
    mc.fingerprints_cached(structs[:2], {"files": {"test.csv": "a"}})  # another count
    assert calls == [3, 3, 2]
