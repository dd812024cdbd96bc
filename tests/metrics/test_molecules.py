"""Molecule metrics against hand computations; FCD against the MOSES reference statistics."""

import math
import os
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

from genmodels.metrics.molecules import (
    fcd,
    filters,
    fingerprints,
    fragment_similarity,
    internal_diversity,
    molecule_metrics,
    mols_to_nx,
    moses_reference_statistics,
    novelty,
    nspdk,
    passes_moses_filters,
    plain_validity_wo_correction,
    scaffold_similarity,
    snn,
    tanimoto,
    uniqueness,
    validity,
    validity_wo_correction,
)
from genmodels.metrics.nspdk import nspdk_features, nspdk_mean_embedding, nspdk_mmd

DATA = Path(os.environ.get("GENMODELS_DATA_DIR", "data"))

SAMPLES = ["CCO", "OCC", "c1ccccc1", "", "C1CC", "CN"]  # 4 valid, 3 distinct
TRAIN = ["C(C)O", "C1=CC=CC=C1", "CCC"]  # ethanol and benzene, written non-canonically


def test_validity_uniqueness_novelty_by_hand():
    assert validity(SAMPLES) == pytest.approx(4 / 6)
    assert uniqueness(SAMPLES) == pytest.approx(3 / 4)  # CCO twice, benzene, CN
    # novelty over the 3 distinct valid molecules: only CN is not a training molecule
    assert novelty(SAMPLES, TRAIN) == pytest.approx(1 / 3)
    # already-canonical training SMILES are compared as given
    assert novelty(SAMPLES, ["CCO", "c1ccccc1"], train_canonical=True) == pytest.approx(1 / 3)
    assert novelty(SAMPLES, TRAIN, train_canonical=True) == pytest.approx(1.0)
    raw = ["CCO", "", "c1ccccc1", "", "", "CN"]
    assert validity_wo_correction(raw) == pytest.approx(3 / 6)
    assert uniqueness(["", "C1CC"]) == 0.0 and novelty([""], TRAIN) == 0.0
    with pytest.raises(ValueError):
        validity([])


def _on_bits(smi):
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    return set(gen.GetFingerprint(Chem.MolFromSmiles(smi)).GetOnBits())


def _tani(a, b):
    a, b = _on_bits(a), _on_bits(b)
    return len(a & b) / len(a | b)


def test_snn_and_internal_diversity_by_hand():
    a, b, c = "CCO", "CCN", "c1ccccc1O"
    t_ab, t_ac, t_bc = _tani(a, b), _tani(a, c), _tani(b, c)
    assert 0 < t_ab < 1 and 0 <= t_ac < 1
    fps = fingerprints([a, b, "", c])  # invalid entries are dropped
    assert fps.shape == (3, 1024) and fps.dtype == np.uint8
    np.testing.assert_allclose(tanimoto(fps, fps)[0, 1], t_ab, rtol=1e-6)
    # SNN: mean over samples of the best match in the reference
    assert snn([a, c], ref=[b]) == pytest.approx((t_ab + t_bc) / 2, rel=1e-6)
    assert snn([a], ref=[a, b]) == pytest.approx(1.0)
    assert snn([a], ref_fps=fingerprints([b, c])) == pytest.approx(max(t_ab, t_ac), rel=1e-6)
    # IntDiv over ordered pairs with self pairs: 1 - mean(1, t, t, 1)
    assert internal_diversity([a, b]) == pytest.approx(1 - (1 + t_ab) / 2, rel=1e-6)
    assert internal_diversity([a, b], p=2) == pytest.approx(1 - math.sqrt((1 + t_ab**2) / 2))
    three = [a, b, c]
    t = np.array([[1, t_ab, t_ac], [t_ab, 1, t_bc], [t_ac, t_bc, 1]])
    assert internal_diversity(three) == pytest.approx(1 - t.mean(), rel=1e-6)
    assert internal_diversity([a, a]) == pytest.approx(0.0, abs=1e-12)


def test_fragment_and_scaffold_similarity_by_hand():
    dpm, naph = "c1ccc(Cc2ccccc2)cc1", "c1ccc2ccccc2c1"
    # scaffolds: diphenylmethane and naphthalene (2 rings each) count; benzene has 1 ring
    # and is ignored (MOSES min_rings=2); counts {dpm: 1, naph: 1} vs {dpm: 1}
    gen = [dpm, naph, "c1ccccc1"]
    assert scaffold_similarity(gen, ref=["Cc1ccc(Cc2ccccc2)cc1"]) == pytest.approx(1 / math.sqrt(2))
    assert scaffold_similarity([dpm], ref_counts={"x": 3}) == pytest.approx(0.0)
    # fragments: butane has no BRICS bond (one fragment), benzene neither: orthogonal
    assert fragment_similarity(["CCCC"], ref=["c1ccccc1"]) == pytest.approx(0.0)
    assert fragment_similarity(["CCCC", "c1ccccc1"], ref=["c1ccccc1"]) == pytest.approx(
        1 / math.sqrt(2)
    )
    assert fragment_similarity(gen, ref=gen) == pytest.approx(1.0)


def _g(smi):
    return mols_to_nx([smi])[0]


def test_nspdk_by_hand():
    """Exact kernels of tiny molecules (collision-free features).

    A lone atom has one (r, d) block with the pair and half features: unit vector, and two
    different elements are orthogonal. Ethane has 4 blocks (r, d in {0, 1}) of 2 equal
    features: 8 entries of 1/(2 sqrt 2). Ethane and ethylene share exactly the radius-0
    blocks (same atoms and degrees, different bond label), so k = 4/8 and MMD = 1. Ethane
    vs propane share the radius-0 atom features of propane's terminal carbons; working
    through propane's 8 blocks gives k = (4/sqrt(10) + 2/sqrt(24)) / 8.
    """
    kw = {"nbits": None}
    assert nspdk_mmd([_g("C")], [_g("N")], **kw) == pytest.approx(2.0)
    assert nspdk_mmd([_g("C"), _g("N")], [_g("C")], **kw) == pytest.approx(0.5)
    f = nspdk_features([_g("CC")], **kw)[0]
    assert len(f) == 8 and np.allclose(list(f.values()), 1 / (2 * math.sqrt(2)))
    assert nspdk_mmd([_g("CC")], [_g("C=C")], **kw) == pytest.approx(1.0)
    assert len(nspdk_features([_g("CCC")], **kw)[0]) == 22
    k = (4 / math.sqrt(10) + 2 / math.sqrt(24)) / 8
    assert nspdk_mmd([_g("CC")], [_g("CCC")], **kw) == pytest.approx(2 - 2 * k)


def test_nspdk_properties():
    mols = ["CCO", "c1ccccc1O", "CC(=O)N", "C#CC(C)O", "OCC(F)(F)F"]
    graphs = mols_to_nx(mols)
    for nbits in (None, 16):
        feats = nspdk_features(graphs, nbits=nbits)
        assert all(sum(v * v for v in f.values()) == pytest.approx(1.0) for f in feats)
        assert nspdk_mmd(graphs, graphs, nbits=nbits) == 0.0
        assert nspdk_mmd(graphs, graphs[:2], nbits=nbits) > 0.01
    # invariant to node relabelling (a permuted copy has the same features)
    g = graphs[1]
    perm = dict(zip(g.nodes, np.random.default_rng(0).permutation(g.number_of_nodes()).tolist()))
    h = nx.relabel_nodes(g, perm)
    assert nspdk_mmd([g], [h], nbits=None) == pytest.approx(0.0, abs=1e-12)
    # the SMILES wrapper: invalid samples dropped, precomputed reference accepted
    emb = nspdk_mean_embedding(mols_to_nx(mols[:3]))
    assert nspdk(["", "CCO", "xx"], emb) == pytest.approx(nspdk(["CCO"], mols[:3]))
    assert math.isnan(nspdk(["", "xx"], mols))
    with pytest.raises(ValueError):
        nspdk_features([nx.Graph()])


def test_plain_validity_counts_no_charged_molecule():
    """PARD's plain validity vs the relaxed one (``validity_wo_correction``): the charge
    rule makes N(C)4 an N+ and C-O(C)-C an O+; relaxed-valid, not plain-valid."""
    from genmodels.domains.molecules import QM9_ATOMS, graph_to_mol, mol_to_smiles

    star = np.zeros((5, 5), int)  # N (or O) bonded to four (three) carbons
    star[0, 1:] = star[1:, 0] = 1
    n_plus = mol_to_smiles(graph_to_mol(np.array([1, 0, 0, 0, 0]), star, QM9_ATOMS, False))
    o_plus = mol_to_smiles(graph_to_mol(np.array([2, 0, 0, 0, -1]), star, QM9_ATOMS, False))
    assert (n_plus, o_plus) == ("C[N+](C)(C)C", "C[O+](C)C")
    raw = [n_plus, o_plus, "CCO", "", "O=C=O"]
    assert validity_wo_correction(raw) == pytest.approx(4 / 5)
    assert plain_validity_wo_correction(raw) == pytest.approx(2 / 5)
    out = molecule_metrics(["CCO"] * 5, TRAIN, ["CCO"], raw, compute_fcd=False, plain=True,
                           compute_nspdk=False)  # fmt: skip
    assert out["plain_validity_wo_correction"] == pytest.approx(2 / 5)
    assert "plain_validity_wo_correction" not in molecule_metrics(
        ["CCO"], TRAIN, ["CCO"], ["CCO"], compute_fcd=False, compute_nspdk=False
    )
    with pytest.raises(ValueError):
        plain_validity_wo_correction([])


def test_molecule_metrics_keys_and_values():
    test = ["CCO", "CCN", "c1ccccc1", "CC(=O)O"]
    raw = ["CCO", "", "c1ccccc1", "", "", "CN"]
    out = molecule_metrics(SAMPLES, TRAIN, test, raw, compute_fcd=False, moses=True)
    assert set(out) == {
        "validity",
        "validity_wo_correction",
        "uniqueness",
        "novelty",
        "nspdk",
        "snn",
        "frag",
        "scaf",
        "int_div",
        "int_div2",
        "filters",
    }
    assert out["validity"] == pytest.approx(4 / 6) and out["validity_wo_correction"] == 0.5
    assert out["uniqueness"] == pytest.approx(3 / 4) and out["novelty"] == pytest.approx(1 / 3)
    valid = ["CCO", "CCO", "c1ccccc1", "CN"]
    assert out["nspdk"] == pytest.approx(nspdk(valid, test))
    assert out["snn"] == pytest.approx(snn(valid, test))
    assert out["int_div"] == pytest.approx(internal_diversity(valid))
    assert out["filters"] == pytest.approx(filters(valid))
    with pytest.raises(ValueError, match="raw_smiles"):
        molecule_metrics(SAMPLES, TRAIN, test, raw[:2], compute_fcd=False)


def test_fcd_missing_torch_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "fcd", None)  # makes `import fcd` raise ImportError
    with pytest.raises(ImportError, match=r"pip install torch==2.13.0"):
        fcd(["CCO", "CCN"], ref_smiles=["CCC", "CCCl"])


def test_fingerprints_match_moses_statistics():
    """Our Morgan fingerprints are MOSES' own (``test_stats.npz`` stores the test set's
    fingerprints row by row), so SNN against those statistics is MOSES' SNN/Test."""
    for rel in ("graphs/moses/test.csv.gz", "graphs/moses/test_stats.npz"):
        if not (DATA / rel).exists():
            pytest.skip(f"{DATA / rel} not available")
    from genmodels.datasets.molecules import moses_smiles

    stats = moses_reference_statistics()
    test = moses_smiles("test")
    assert stats["SNN"]["fps"].shape == (len(test), 1024)
    np.testing.assert_array_equal(fingerprints(test[:300]), stats["SNN"]["fps"][:300])
    assert snn(test[:20], ref_fps=stats["SNN"]["fps"]) == pytest.approx(1.0)


@pytest.mark.slow  # torch import + ChemNet on 2,000 molecules on CPU: about 1-2 minutes
def test_fcd_against_moses_reference_statistics():
    """FCD of a MOSES test subsample to MOSES' own test statistics is small; QM9's is large."""
    pytest.importorskip("fcd")
    for rel in ("graphs/moses/test.csv.gz", "graphs/moses/test_stats.npz", "graphs/DIG/qm9.csv"):
        if not (DATA / rel).exists():
            pytest.skip(f"{DATA / rel} not available")
    from genmodels.datasets.molecules import moses_smiles, read_smiles_column

    stats = moses_reference_statistics()
    test = moses_smiles("test")
    rng = np.random.default_rng(0)
    sub = [test[i] for i in rng.choice(len(test), 1000, replace=False)]
    near = fcd(sub, ref_stats=stats["FCD"])
    qm9 = read_smiles_column(DATA / "graphs" / "DIG" / "qm9.csv")
    far = fcd([qm9[i] for i in rng.choice(len(qm9), 1000, replace=False)], ref_stats=stats["FCD"])
    print(f"FCD to MOSES test statistics: MOSES test subsample {near:.3f}, QM9 {far:.3f}")
    assert 0.0 < near < 1.5, near
    assert far > 10 * near, (near, far)


def test_frechet_distance_closed_form():
    """Gaussians with commuting covariances: ||dmu||^2 + sum (sqrt(a) - sqrt(b))^2."""
    from genmodels.metrics.molecules import frechet_distance

    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    want = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want)
    assert frechet_distance(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    "smiles, ok, why",
    [
        ("CCO", True, ""),
        ("CC(=O)Nc1ccc(O)cc1", True, ""),
        ("C1CCCCCC1", True, "a 7-ring is allowed"),
        ("C1CCCCCCC1", False, "ring of 8 atoms"),
        ("C[N+](C)(C)C", False, "charged atom"),
        ("CCI", False, "iodine is not an allowed element"),
        ("CC=O", False, "aldehyde (MCF)"),
        ("C1CO1", False, "epoxide (MCF)"),
        ("CCSSCC", False, "disulfide (MCF)"),
        ("O=C1C(=Cc2ccccc2)SC(=S)N1", False, "benzylidene rhodanine (PAINS)"),
        ("not a smiles", False, "invalid"),
    ],
)
def test_moses_filters_on_hand_cases(smiles, ok, why):
    assert passes_moses_filters(smiles) is ok, why


def test_moses_filters_fraction_and_pains_alone():
    from genmodels.metrics.molecules import _moses_alerts

    mcf, pains = _moses_alerts()
    rhodanine = Chem.AddHs(Chem.MolFromSmiles("O=C1C(=Cc2ccccc2)SC(=S)N1"))
    assert pains.HasMatch(rhodanine) and not any(rhodanine.HasSubstructMatch(q) for q in mcf)
    # invalid samples are left out of the denominator, as for the other MOSES metrics
    assert filters(["CCO", "C[N+](C)(C)C", "c1ccccc1", "xx", ""]) == pytest.approx(2 / 3)
    assert math.isnan(filters(["", "xx"]))


@pytest.mark.slow  # 2,000 molecules (~30 s); the filters' rules are tested case by case above
def test_moses_test_molecules_pass_the_moses_filters():
    """MOSES built its data set with these filters: its test molecules all pass."""
    if not (DATA / "graphs/moses/test.csv.gz").exists():
        pytest.skip(f"{DATA / 'graphs/moses/test.csv.gz'} not available")
    from genmodels.datasets.molecules import moses_smiles

    assert filters(moses_smiles("test")[:2000]) == 1.0
