"""MoleculeDomain: GDSS layout, exact round trips on QM9, charge rule, valency correction."""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rdkit import Chem

from genmodels.domains.molecules import (
    QM9_ATOMS,
    ZINC_ATOMS,
    MoleculeDomain,
    construct_mol,
    correct_mol,
    graph_to_mol,
    mol_to_graph,
    mol_to_smiles,
    quantize_atoms,
    quantize_bonds,
    read_smiles,
    write_smiles,
)

QM9 = MoleculeDomain(QM9_ATOMS, 9)


def _qm9_rows():
    path = Path(os.environ["GENMODELS_DATA_DIR"]) / "graphs" / "DIG" / "qm9.csv"
    if not path.exists():
        pytest.skip(f"{path} not available")
    lines = path.read_text().split("\n")
    return [ln.strip().rstrip(",") for ln in lines[1:] if ln.strip()]


def _charged(mol):
    return any(a.GetFormalCharge() != 0 for a in mol.GetAtoms())


def _graph(n, edges, types):
    """Class/bond arrays of a hand-made graph: edges as (i, j, order)."""
    b = np.zeros((n, n), np.int64)
    for i, j, o in edges:
        b[i, j] = b[j, i] = o
    return np.asarray(types, np.int64), b


def test_state_layout_is_gdss():
    """F = len(atoms) channels, no explicit no-atom channel, Kekule bond orders, zero padding."""
    state, ctx = QM9.encode(["C#N", "c1ccoc1"])  # HCN and furan
    x, adj = np.asarray(state["x"]), np.asarray(state["adj"])
    assert x.shape == (2, 9, 4) and adj.shape == (2, 9, 9)
    np.testing.assert_array_equal(np.asarray(ctx["node_mask"]).sum(1), [2, 5])
    # padding rows are all zero: the virtual class lives only in the decoder
    assert np.all(x[0, 2:] == 0) and np.all(x[1, 5:] == 0)
    np.testing.assert_array_equal(x.sum(-1)[0], [1, 1] + [0] * 7)
    # HCN: a triple bond between C (channel 0) and N (channel 1)
    assert x[0, 0, 0] == 1 and x[0, 1, 1] == 1 and adj[0, 0, 1] == 3 == adj[0, 1, 0]
    # furan kekulized: two double and three single bonds, no aromatic order
    orders = adj[1][np.triu_indices(9, 1)]
    assert sorted(orders[orders > 0].tolist()) == [1, 1, 1, 2, 2]
    assert np.all(adj == np.swapaxes(adj, 1, 2)) and np.all(np.diagonal(adj, axis1=1, axis2=2) == 0)
    assert ctx["masks"]["x"].shape == (2, 9, 1) and ctx["masks"]["adj"].shape == (2, 9, 9)


def test_atom_order_is_canonical_nonisomeric():
    """Atoms follow RDKit's canonical non-isomeric SMILES of the input (GDSS preprocessor)."""
    for smi in ["OCC", "CCO", "N#CC(O)C=O"]:
        types, _ = mol_to_graph(smi, QM9_ATOMS)
        can = Chem.MolFromSmiles(Chem.MolToSmiles(Chem.MolFromSmiles(smi), isomericSmiles=False))
        assert [QM9_ATOMS[t] for t in types] == [a.GetSymbol() for a in can.GetAtoms()]


def test_round_trip_qm9_exact():
    """SMILES -> state -> molecule -> canonical SMILES is exact for uncharged QM9 molecules.

    200 rows spread over the file (it is ordered by size) plus the charged rows near the
    start. Charged molecules lose their charges in the encoding (as in GDSS): the glycine
    zwitterion gdb_80 (0-based row 79) comes back as neutral glycine.
    """
    rows = _qm9_rows()
    assert len(rows) == 133885
    charged_rows = [i for i in range(5000) if "+" in rows[i] or "-]" in rows[i]][:5]
    picks = sorted(set(np.linspace(0, len(rows) - 1, 200).astype(int).tolist()) | set(charged_rows))
    smiles = [rows[i] for i in picks]
    state, ctx = QM9.encode(smiles)
    decoded = QM9.decode(state, ctx)
    raw = QM9.decode(state, ctx, correction=False)
    n_charged = 0
    for k, (s, m, r) in enumerate(zip(smiles, decoded, raw)):
        ref = Chem.MolFromSmiles(s)
        if _charged(ref):
            n_charged += 1
            assert m is not None and r is not None
            continue
        want = Chem.MolToSmiles(ref)
        assert mol_to_smiles(m) == want, (picks[k], s)
        assert mol_to_smiles(r) == want, (picks[k], s)
    assert n_charged >= 5
    assert rows[79] == "[NH3+]CC([O-])=O"
    out, out_raw = QM9.decode_smiles(*QM9.encode([rows[79]]))
    assert out == ["NCC(=O)O"] and out_raw == ["NCC(=O)O"]


def test_charge_rule_tetravalent_nitrogen():
    """A nitrogen with four single bonds becomes N+ (valid without correction)."""
    # N (class 1) bonded to four carbons: tetramethylammonium
    types, bonds = _graph(5, [(1, 0, 1), (2, 1, 1), (3, 1, 1), (4, 1, 1)], [0, 1, 0, 0, 0])
    mol = construct_mol(types, bonds, QM9_ATOMS)
    assert mol.GetAtomWithIdx(1).GetFormalCharge() == 1
    assert mol_to_smiles(graph_to_mol(types, bonds, QM9_ATOMS, correction=False)) == "C[N+](C)(C)C"
    # an oxygen with three bonds becomes O+ (trimethyloxonium)
    types, bonds = _graph(4, [(1, 0, 1), (2, 1, 1), (3, 1, 1)], [0, 2, 0, 0])
    assert mol_to_smiles(graph_to_mol(types, bonds, QM9_ATOMS, correction=False)) == "C[O+](C)C"
    # nitromethane: the encoding drops charges, the rule restores N+, O- comes back as OH
    assert QM9.decode_smiles(*QM9.encode(["C[N+](=O)[O-]"])) == (["C[N+](=O)O"], ["C[N+](=O)O"])
    # bonds are added one at a time: a fifth bond on the N+ leaves it charged but invalid,
    # and correction lowers it back to four bonds
    types, bonds = _graph(6, [(1, j, 1) for j in (0, 2, 3, 4, 5)], [0, 1, 0, 0, 0, 0])
    assert construct_mol(types, bonds, QM9_ATOMS).GetAtomWithIdx(1).GetFormalCharge() == 1
    assert graph_to_mol(types, bonds, QM9_ATOMS, correction=False) is None
    assert mol_to_smiles(graph_to_mol(types, bonds, QM9_ATOMS)) == "C[N+](C)(C)C"
    # a jump from valence 3 to 5 (triple, then double bond) is two over: no charge
    types, bonds = _graph(3, [(1, 0, 3), (2, 0, 2)], [1, 0, 0])
    assert construct_mol(types, bonds, QM9_ATOMS).GetAtomWithIdx(0).GetFormalCharge() == 0
    assert graph_to_mol(types, bonds, QM9_ATOMS, correction=False) is None
    corrected = graph_to_mol(types, bonds, QM9_ATOMS)
    assert corrected is not None and all(a.GetFormalCharge() == 0 for a in corrected.GetAtoms())


def test_overvalent_graph_invalid_raw_valid_corrected():
    """A pentavalent carbon is invalid without correction; correction drops one bond."""
    types, bonds = _graph(6, [(0, j, 1) for j in range(1, 6)], [0] * 6)
    mol, was_valid = correct_mol(construct_mol(types, bonds, QM9_ATOMS))
    assert not was_valid
    assert mol.GetNumBonds() == 4  # exactly one bond removed
    assert graph_to_mol(types, bonds, QM9_ATOMS, correction=False) is None
    # the loose methyl is a separate fragment; the largest one (neopentane) is kept
    assert mol_to_smiles(graph_to_mol(types, bonds, QM9_ATOMS)) == "CC(C)(C)C"
    # a double bond on fluorine is lowered to single rather than removed
    types, bonds = _graph(2, [(0, 1, 2)], [0, 3])
    assert graph_to_mol(types, bonds, QM9_ATOMS, correction=False) is None
    assert mol_to_smiles(graph_to_mol(types, bonds, QM9_ATOMS)) == "CF"
    # the highest-order bond of the offending atom is lowered first: C(=C)(=C)=C -> C=C(C)=C ...
    types, bonds = _graph(4, [(0, 1, 3), (0, 2, 2)], [0, 0, 0, 0])
    corrected = graph_to_mol(types, bonds, QM9_ATOMS)
    assert mol_to_smiles(corrected) == "C=C=C"  # triple -> double gives valence 4


def test_quantization_follows_gdss():
    x = np.array(
        [
            [0.9, 0.1, 0.0, 0.0],  # C
            [0.6, 0.7, 0.0, 0.0],  # two channels above 0.5: the first wins
            [0.4, 0.4, 0.4, 0.4],  # none above 0.5: no atom
            [np.nan, 0.0, 0.0, 0.51],  # NaN ignored: F
        ]
    )
    np.testing.assert_array_equal(quantize_atoms(x), [0, 0, -1, 3])
    a = np.array([-0.3, 0.49, 0.5, 1.49, 1.5, 2.49, 2.5, 7.0, np.nan])
    np.testing.assert_array_equal(quantize_bonds(a), [0, 0, 1, 1, 2, 2, 3, 3, 0])


def test_decode_noisy_state_and_padding():
    """Noise below the thresholds and anything on padding nodes do not change the molecule."""
    smiles = ["CC(=O)N", "OC1CC1C#N"]
    state, ctx = QM9.encode(smiles)
    rng = np.random.default_rng(0)
    noisy = {
        "x": np.asarray(state["x"]) + rng.uniform(-0.3, 0.3, state["x"].shape),
        "adj": np.asarray(state["adj"]) + rng.uniform(-0.4, 0.4, state["adj"].shape),
    }
    # garbage on padding nodes is masked out by ctx["node_mask"]
    noisy["x"][:, 8] = [1, 0, 0, 0]
    noisy["adj"][:, 8, :] = noisy["adj"][:, :, 8] = 1.0
    noisy["adj"] = (noisy["adj"] + np.swapaxes(noisy["adj"], 1, 2)) / 2
    out = [mol_to_smiles(m) for m in QM9.decode(noisy, ctx)]
    assert out == [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smiles]


def test_constrain_symmetric_masked_and_jittable():
    _, ctx = QM9.encode(["CCO", "C"])
    key = jax.random.PRNGKey(0)
    state = {
        "x": jax.random.normal(key, (2, 9, 4)),
        "adj": jax.random.normal(jax.random.fold_in(key, 1), (2, 9, 9)),
    }
    out = jax.jit(QM9.constrain)(state, ctx)
    adj = np.asarray(out["adj"])
    np.testing.assert_array_equal(adj, np.swapaxes(adj, 1, 2))
    assert np.all(np.diagonal(adj, axis1=1, axis2=2) == 0)
    assert np.all(adj[0, 3:] == 0) and np.all(adj[1, 1:] == 0) and np.all(adj[1, :, 1:] == 0)
    assert np.all(np.asarray(out["x"])[1, 1:] == 0)
    # the kept upper triangle is untouched
    iu = np.triu_indices(3, 1)
    np.testing.assert_array_equal(adj[0][iu], np.asarray(state["adj"])[0][iu])


def test_bad_input_errors():
    with pytest.raises(ValueError, match="molecule 1: invalid SMILES"):
        QM9.encode(["CC", "C1CC"])
    with pytest.raises(ValueError, match="element S"):
        QM9.encode(["CCS"])
    with pytest.raises(ValueError, match="10 heavy atoms"):
        QM9.encode(["CCCCCCCCCC"])
    with pytest.raises(ValueError, match="empty list"):
        QM9.encode([])
    with pytest.raises(ValueError, match="not an element"):
        MoleculeDomain(("C", "Xx"), 9)


def test_zinc_vocabulary_round_trip():
    zinc = MoleculeDomain(ZINC_ATOMS, 38)
    smiles = ["CC(=O)Nc1ccc(S(=O)(=O)Cl)cc1", "O=P(O)(O)OCc1ccc(Br)cc1I", "FC(F)(F)c1ccccn1"]
    out, raw = zinc.decode_smiles(*zinc.encode(smiles))
    want = [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smiles]
    assert out == want and raw == want


def test_decode_all_padding_is_none():
    state, ctx = QM9.encode(["CC"])
    ctx = {**ctx, "node_mask": jnp.zeros((1, 9))}
    assert QM9.decode(state, ctx) == [None]
    assert QM9.decode_smiles(state, ctx) == ([""], [""])


def test_node_count_sampler_support():
    sample = QM9.node_count_sampler([3, 5, 5, 9])
    ctx = jax.jit(sample, static_argnums=1)(jax.random.PRNGKey(1), 400)
    counts = np.asarray(ctx["node_mask"]).sum(1)
    assert set(counts.tolist()) == {3, 5, 9}
    assert abs(np.mean(counts == 5) - 0.5) < 0.1
    with pytest.raises(ValueError):
        QM9.node_count_sampler([0, 3])


def test_smiles_file_round_trip(tmp_path):
    smiles = ["CCO", "", "c1ccccc1", None, "C#N"]
    path = write_smiles(smiles, tmp_path / "s.smi")
    assert path.read_text() == "CCO\n\nc1ccccc1\n\nC#N\n"
    assert read_smiles(path) == ["CCO", "", "c1ccccc1", "", "C#N"]
    with pytest.raises(ValueError):
        write_smiles(["C\nC"], tmp_path / "bad.smi")


def test_smiles_files_of_other_tools_are_read(tmp_path):
    # a header line, names after the SMILES, Windows line ends, an empty (failed) sample
    path = tmp_path / "other.smi"
    path.write_bytes(b"SMILES Name\r\nCCO ethanol\r\n\r\nC#N hcn\r\n")
    assert read_smiles(path) == ["CCO", "", "C#N"]
