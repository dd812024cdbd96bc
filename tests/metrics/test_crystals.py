"""CDVAE crystal metrics on hand-made structures with hand-computed values."""

import numpy as np
import pytest
from pymatgen.core import Element, Lattice, Structure

import genmodels.metrics.crystals as mc
from genmodels.metrics.crystals import (
    COV_CUTOFFS,
    composition_validity,
    coverage,
    density_wdist,
    generation_metrics,
    nelem_wdist,
    normalize_composition_fingerprints,
    reconstruction_metrics,
    structure_validity,
)

AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660  # 1 u / 1 A^3 in g / cm^3


def _nacl() -> Structure:
    """Rock-salt NaCl, primitive 2-atom cell."""
    return Structure(
        Lattice.from_parameters(3.99, 3.99, 3.99, 60, 60, 60),
        ["Na", "Cl"],
        [[0, 0, 0], [0.5, 0.5, 0.5]],
    )


def _cscl() -> Structure:
    return Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _perovskite() -> Structure:
    return Structure(
        Lattice.cubic(3.905),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )


def test_structure_validity():
    assert structure_validity(_nacl())
    close = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.06, 0, 0]])  # 0.3 A
    assert not structure_validity(close)
    # The short distance is across the cell boundary: only the minimum image sees it.
    wrapped = Structure(
        Lattice.cubic(10.0), ["C", "C"], [[0.01, 0.5, 0.5], [0.99, 0.5, 0.5]]
    )  # 0.2 A
    assert not structure_validity(wrapped)
    tiny = Structure(Lattice.cubic(0.4), ["C"], [[0, 0, 0]])  # volume 0.064 A^3
    assert not structure_validity(tiny)
    assert structure_validity(Structure(Lattice.cubic(0.5), ["C"], [[0, 0, 0]]))  # 0.125 A^3
    assert not structure_validity(None)


def test_composition_validity():
    assert composition_validity(_nacl())
    assert composition_validity("NaCl")
    assert not composition_validity("NaCl2")
    assert composition_validity("Fe")  # single element
    assert composition_validity("NaK")  # all metals (alloy)
    assert composition_validity(_perovskite())  # Sr2+ Ti4+ 3 O2-
    assert not composition_validity(None)


def test_composition_validity_matches_smact_smact14():
    """Our port of CDVAE's smact_validity agrees with smact's own, on the smact14 set."""
    from smact.screening import smact_validity

    formulas = ["NaCl", "NaCl2", "Fe2O3", "Fe3O4", "CuCdN3", "VIrO3", "KBr3", "H2O", "HeNe"]
    formulas += ["CsPbI3", "XeF2", "LaCoO3", "NaClO4", "Mg3N2", "BaTiO4", "LiO", "SiC", "Ag2S"]
    got = [composition_validity(f) for f in formulas]
    want = [smact_validity(f, oxidation_states_set="smact14") for f in formulas]
    assert got == want
    assert sum(got) not in (0, len(got))  # the list has both kinds


def test_old_neutral_ratios_convention(monkeypatch):
    """smact < 3 returned (exists, ratios) from neutral_ratios; both forms give the same answer."""
    import smact

    new = smact.neutral_ratios

    def old(ox, stoichs=None, threshold=5):
        r = new(ox, stoichs=stoichs, threshold=threshold)
        return (len(r) > 0, r)

    before = [composition_validity(f) for f in ("NaCl", "NaCl2", "Fe2O3")]
    monkeypatch.setattr(smact, "neutral_ratios", old)
    assert (
        [composition_validity(f) for f in ("NaCl", "NaCl2", "Fe2O3")]
        == before
        == [True, False, True]
    )


def _rotated_permuted(s: Structure, seed: int) -> Structure:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.diag(r))
    if np.linalg.det(rot) < 0:
        rot[:, 0] *= -1  # a proper rotation
    perm = rng.permutation(len(s))
    lat = Lattice(s.lattice.matrix @ rot.T)
    return Structure(lat, [s.species[i] for i in perm], s.frac_coords[perm])


def test_reconstruction_self_match():
    structs = [_perovskite(), _nacl(), _cscl()]
    moved = [_rotated_permuted(s, k) for k, s in enumerate(structs)]
    assert not np.allclose(moved[0].lattice.matrix, structs[0].lattice.matrix)
    out = reconstruction_metrics(moved, structs)
    assert out["match_rate"] == 1.0 and out["rmse"] < 1e-6
    # One wrong, one invalid, one failed: 1 of 4 matches.
    # NaCl in the CsCl structure type: same composition, another crystal.
    wrong = Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    close = Structure(_nacl().lattice, ["Na", "Cl"], [[0, 0, 0], [0.05, 0.0, 0.0]])
    out = reconstruction_metrics(
        [moved[0], wrong, close, None], [structs[0], _nacl(), _nacl(), _nacl()]
    )
    assert out["match_rate"] == 0.25 and out["rmse"] < 1e-6
    # Off by a small displacement: matched, RMS normalized by (V / n)^(1/3) as pymatgen does.
    nudged = _perovskite()
    nudged.translate_sites([1], [0.01, 0.0, 0.0])  # 0.03905 A on 1 of 5 atoms
    out = reconstruction_metrics([nudged], [_perovskite()])
    assert out["match_rate"] == 1.0 and 0 < out["rmse"] < 0.05


def test_wasserstein_distances_by_hand():
    m_c, m_na, m_cl = (float(Element(e).atomic_mass) for e in ("C", "Na", "Cl"))
    a = Structure(Lattice.cubic(2.0), ["C"], [[0, 0, 0]])  # one C in 8 A^3
    b = Structure(Lattice.cubic(3.0), ["C"], [[0, 0, 0]])  # one C in 27 A^3
    c = _nacl()
    da = m_c / 8 * AMU_PER_A3_TO_G_PER_CM3
    db = m_c / 27 * AMU_PER_A3_TO_G_PER_CM3
    dcl = (m_na + m_cl) / (3.99**3 / np.sqrt(2)) * AMU_PER_A3_TO_G_PER_CM3  # 60-degree rhombohedron
    # Two equally sized samples: W1 = mean |sorted x - sorted y|.
    want = (abs(min(da, db) - min(db, dcl)) + abs(max(da, db) - max(db, dcl))) / 2
    assert density_wdist([a, b], [b, c]) == pytest.approx(want, rel=1e-4)
    assert density_wdist([a, b], [b, a]) == pytest.approx(0.0, abs=1e-12)
    # Number of elements: [1, 2, 3] (SrTiO3) vs [1, 1, 2]: (|1-1| + |2-1| + |3-2|) / 3.
    assert nelem_wdist([a, c, _perovskite()], [a, b, c]) == pytest.approx(2 / 3)
    p5 = Structure(
        Lattice.cubic(6.0),
        ["Na", "K", "Cl", "Br", "I"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]],
    )
    assert nelem_wdist([a, c, p5], [a, b, c]) == pytest.approx((0 + 1 + 3) / 3)


def test_coverage_by_hand():
    gt_s = [np.array([0.0]), np.array([1.0]), np.array([5.0])]
    gt_c = [np.zeros(1)] * 3
    pred_s = [np.array([0.1]), np.array([1.5]), None]
    pred_c = [np.zeros(1), np.zeros(1), None]
    out = coverage(pred_s, pred_c, gt_s, gt_c, struc_cutoff=0.2, comp_cutoff=1.0)
    # Recall: gt 0 -> 0.1 (ok), gt 1 -> 0.5, gt 5 -> 3.5. Precision: pred 0 ok, pred 1 0.5;
    # the failed third prediction still counts in the denominator.
    assert out["cov_recall"] == pytest.approx(1 / 3)
    assert out["cov_precision"] == pytest.approx(1 / 3)
    assert out["amsd_recall"] == pytest.approx((0.1 + 0.5 + 3.5) / 3)
    assert out["amsd_precision"] == pytest.approx((0.1 + 0.5) / 2)
    # Each kind's nearest neighbour is taken separately, as in CDVAE: gt 0 counts as covered
    # (nearest structure: pred 0 at 0.1; nearest composition: pred 1 at 0) although pred 0
    # alone is too far in composition. gt 1: 0.5 and 0. Precision: pred 0 is 2.0 from every
    # test composition, pred 1 is within both cutoffs.
    far_c = [np.array([2.0]), np.zeros(1), None]
    out = coverage(pred_s, far_c, gt_s, gt_c, struc_cutoff=0.6, comp_cutoff=1.0)
    assert out["cov_recall"] == pytest.approx(2 / 3)
    assert out["cov_precision"] == pytest.approx(1 / 3)
    assert out["amcd_precision"] == pytest.approx(1.0)


def test_normalize_composition_fingerprints():
    x = mc._COMP_SCALER_MEANS + 2.0 * mc._COMP_SCALER_STDS
    x[5] = np.nan
    z = normalize_composition_fingerprints([x])
    assert z.shape == (1, 132)
    np.testing.assert_allclose(np.delete(z[0], 5), 2.0)
    assert z[0, 5] == 0.0


def test_cov_cutoffs_are_cdvae():
    assert COV_CUTOFFS["mp_20"] == {"struc": 0.4, "comp": 10.0}
    assert COV_CUTOFFS["perov_5"] == COV_CUTOFFS["carbon_24"] == {"struc": 0.2, "comp": 4.0}


def test_generation_metrics_identical_sets():
    """Identical generated and test sets: full coverage, zero distances, all valid."""
    test = [_nacl(), _cscl()]
    gen = [_rotated_permuted(s, 3 + k) for k, s in enumerate(test)]
    fps = mc.fingerprints(test, progress=False)
    assert all(f is not None and f.shape == (61,) for f in fps[0])
    assert all(f is not None and f.shape == (132,) for f in fps[1])
    out = generation_metrics(gen, test, "mp_20", test_fingerprints=fps, progress=False)
    assert out["struct_validity"] == out["comp_validity"] == out["validity"] == 1.0
    assert out["cov_recall"] == out["cov_precision"] == 1.0
    assert out["density_wdist"] == pytest.approx(0.0, abs=1e-9)
    assert out["nelem_wdist"] == 0.0
    # diversity: with two valid crystals, the one distance between their fingerprints
    sfp, cfp = mc.fingerprints(gen, progress=False)
    assert out["struct_div"] == pytest.approx(np.linalg.norm(sfp[0] - sfp[1]), rel=1e-9)
    z = normalize_composition_fingerprints(cfp)
    assert out["comp_div"] == pytest.approx(np.linalg.norm(z[0] - z[1]), rel=1e-9)
    assert out["comp_div"] > 0 and out["struct_div"] > 0
    assert np.isnan(mc.mean_pairwise_distance(z[:1]))
    # Add a failed decode and an invalid NaCl2: validity 2/4, precision 2/4, recall 1.
    bad = Structure(
        Lattice.cubic(5.0), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5], [0, 0.5, 0.5]]
    )
    out = generation_metrics(
        gen + [None, bad], test, "mp_20", test_fingerprints=fps, progress=False
    )
    assert out["comp_validity"] == 0.5 and out["struct_validity"] == 0.75
    assert out["validity"] == 0.5 and out["num_valid"] == 2.0
    assert out["cov_recall"] == 1.0 and out["cov_precision"] == 0.5
    assert out["density_wdist"] == pytest.approx(0.0, abs=1e-9)
    assert out["struct_div"] == pytest.approx(np.linalg.norm(sfp[0] - sfp[1]), rel=1e-9)


def test_fingerprints_cached_round_trip(tmp_path, monkeypatch):
    """The cache file gives back exactly the computed fingerprints, None included."""
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path))
    structs, key = [_nacl(), None, _cscl()], {"dataset": "toy"}
    first = mc.fingerprints_cached(structs, key, progress=False)
    assert len(list(tmp_path.glob("metrics/crystal-fp-*.npz"))) == 1
    assert first[0][1] is None and first[1][1] is None

    def boom(*a, **k):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(mc, "fingerprints", boom)
    again = mc.fingerprints_cached(structs, key, progress=False)
    for a, b in zip(first[0] + first[1], again[0] + again[1]):
        assert (a is None and b is None) or np.array_equal(a, b)
    # a cache made for another number of crystals is not used
    with pytest.raises(AssertionError, match="recomputed"):
        mc.fingerprints_cached(structs[:2], key, progress=False)
