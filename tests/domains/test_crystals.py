"""Crystal domain: lattice math, canonical cells, padding, constrain, files, radius graph."""

import csv
import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from genmodels.datasets.registry import fetch
from genmodels.domains.crystals import (
    CrystalArrays,
    CrystalDomain,
    canonical_structure,
    lattice_params_to_matrix,
    min_image_distances,
    radius_graph_pbc,
    read_cif,
    wrap_frac,
    write_cif,
    write_extxyz,
)


def _csv_structures(name: str, rows: list[int]) -> list[Structure]:
    csv.field_size_limit(1 << 26)
    with open(fetch(name, f"crystals/{name}/val.csv"), newline="") as f:
        data = list(csv.DictReader(f))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [Structure.from_str(data[i]["cif"], fmt="cif") for i in rows]


@pytest.fixture(scope="module")
def real_structures() -> list[Structure]:
    """A few perov_5 (5 atoms) and carbon_24 (6-24 atoms) crystals, canonical cells."""
    raw = _csv_structures("perov_5", [0, 7]) + _csv_structures("carbon_24", [0, 3, 11])
    return [canonical_structure(s) for s in raw]


def _nacl() -> Structure:
    """Conventional rock-salt NaCl (8 atoms), built by hand."""
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    coords = np.concatenate([fcc, fcc + [0.5, 0, 0]]) % 1.0
    return Structure(Lattice.cubic(5.64), ["Na"] * 4 + ["Cl"] * 4, coords)


def test_lattice_matrix_matches_pymatgen():
    rng = np.random.default_rng(0)
    params = np.concatenate(
        [rng.uniform(2, 10, (16, 3)), rng.uniform(60, 120, (16, 3))], axis=1
    )  # [16, 6]
    got = np.asarray(lattice_params_to_matrix(jnp.asarray(params, jnp.float32)))
    want = np.stack([Lattice.from_parameters(*p).matrix for p in params])
    np.testing.assert_allclose(got, want, atol=2e-5)  # float32


def test_niggli_round_trip():
    s = _nacl().get_primitive_structure()  # 2 atoms, rhombohedral 60-degree cell
    m = np.array(s.lattice.matrix)
    # Same crystal on a skewed, non-reduced cell: unimodular change of basis.
    u = np.array([[1, 0, 0], [1, 1, 0], [2, -1, 1]])
    skewed = Structure(Lattice(u @ m), s.species, s.cart_coords, coords_are_cartesian=True)
    assert not np.allclose(skewed.lattice.abc, s.lattice.abc)
    c1, c2 = canonical_structure(s), canonical_structure(skewed)
    # The Niggli cell is unique, so both give the same parameters; and it is a fixed point.
    np.testing.assert_allclose(c1.lattice.parameters, c2.lattice.parameters, atol=1e-6)
    np.testing.assert_allclose(
        canonical_structure(c1).lattice.parameters, c1.lattice.parameters, atol=1e-6
    )
    np.testing.assert_allclose(
        c1.lattice.matrix, lattice_params_to_matrix(c1.lattice.parameters), atol=1e-6
    )
    assert StructureMatcher().fit(c2, skewed)
    assert np.all((c2.frac_coords >= 0) & (c2.frac_coords < 1))
    # primitive=True turns the 8-atom conventional cell into the 2-atom primitive one.
    assert len(canonical_structure(_nacl())) == 8
    assert len(canonical_structure(_nacl(), primitive=True)) == 2


@pytest.mark.parametrize("one_hot", [True, False])
def test_encode_decode_round_trip(real_structures, one_hot):
    dom = CrystalDomain(max_atoms=24, one_hot_types=one_hot)
    state, ctx = dom.encode(real_structures)
    b = len(real_structures)
    assert state["frac"].shape == (b, 24, 3) and state["lattice"].shape == (b, 6)
    assert state["types"].shape == ((b, 24, 100) if one_hot else (b, 24))
    counts = np.array([len(s) for s in real_structures])
    np.testing.assert_array_equal(ctx["num_atoms"], counts)
    pad = np.arange(24)[None, :] >= counts[:, None]  # [B, N]
    assert np.all(np.asarray(state["frac"])[pad] == 0)
    assert np.all(np.asarray(state["types"])[pad] == 0)
    out = dom.decode(state, ctx)
    # encode re-canonicalizes: Niggli may flip an axis (same parameters, frac x -> 1 - x),
    # so compare against what encode itself stores.
    expected = dom.to_arrays(real_structures).to_structures()
    for s, o in zip(expected, out):
        assert o.atomic_numbers == s.atomic_numbers
        np.testing.assert_allclose(o.lattice.parameters, s.lattice.parameters, rtol=1e-6)
        np.testing.assert_allclose(o.frac_coords, s.frac_coords, atol=1e-6)


def test_encode_rejects_bad_input():
    dom = CrystalDomain(max_atoms=4)
    with pytest.raises(ValueError, match="max_atoms"):
        dom.encode([_nacl()])  # 8 atoms
    with pytest.raises(ValueError, match="num_types"):
        CrystalDomain(max_atoms=8, num_types=11).encode([_nacl()])  # Cl is Z=17
    with pytest.raises(ValueError, match="empty"):
        dom.encode([])


def test_decode_failed_lattice_is_none():
    dom = CrystalDomain(max_atoms=2)
    ctx = dom.context(jnp.array([2, 2, 2]))
    state = {
        "frac": jnp.full((3, 2, 3), 0.25),
        "types": jax.nn.one_hot(jnp.array([[10, 16], [10, 16], [10, 16]]), 100),
        "lattice": jnp.array(
            [
                [4.0, 4.0, 4.0, 90, 90, 90],
                [-4.0, 4.0, 4.0, 90, 90, 90],
                [4.0, 4.0, jnp.nan, 90, 90, 90],
            ]
        ),
    }
    out = dom.decode(state, ctx)
    assert out[0] is not None and out[0].composition.reduced_formula == "NaCl"
    assert out[1] is None and out[2] is None


def test_constrain_wraps_and_zeros_padding():
    dom = CrystalDomain(max_atoms=3)
    ctx = dom.context(jnp.array([2]))
    frac = jnp.array([[[-0.25, 1.0, 2.3], [-1e-9, 0.5, -3.75], [0.7, 0.7, 0.7]]], jnp.float32)
    types = jnp.ones((1, 3, 100))
    lattice = jnp.array([[3.0, 3.0, 3.0, 90.0, 90.0, 90.0]])
    out = jax.jit(dom.constrain)({"frac": frac, "types": types, "lattice": lattice}, ctx)
    f = np.asarray(out["frac"])
    assert np.all((f >= 0) & (f < 1))
    np.testing.assert_allclose(f[0, 0], [0.75, 0.0, 0.3], atol=1e-6)
    np.testing.assert_allclose(f[0, 1, 1:], [0.5, 0.25], atol=1e-6)
    assert np.all(f[0, 2] == 0) and np.all(np.asarray(out["types"])[0, 2] == 0)
    np.testing.assert_array_equal(out["lattice"], lattice)  # the lattice is never padded
    # float32: x - floor(x) rounds to 1.0 for tiny negative x; wrap_frac maps it to 0.
    assert float(wrap_frac(jnp.float32(-1e-9))) == 0.0


def test_cif_round_trip(tmp_path, real_structures):
    structs = [real_structures[0], None, real_structures[2], real_structures[0]]  # equal formulas
    path = write_cif(structs, tmp_path / "samples.cif")
    assert path.read_text().count("data_") == 4
    with pytest.warns(UserWarning, match=r"skipped 1 .*data_1_failed\): empty block"):
        back = read_cif(path, keep_failed=True)
    assert len(back) == 4 and back[1] is None
    for s, o in zip(structs, back):
        if s is None:
            continue
        assert o.atomic_numbers == s.atomic_numbers
        np.testing.assert_allclose(o.lattice.parameters, s.lattice.parameters, atol=1e-6)
        np.testing.assert_allclose(o.frac_coords, s.frac_coords, atol=1e-6)
    # Default: bad blocks are skipped, counted and named in a warning.
    with open(path, "a") as f:
        f.write("data_garbage\n_cell_length_a 3.0\nloop_\n _atom_site_fract_x\n nonsense\n")
    with pytest.warns(UserWarning, match=r"skipped 2 .*data_1_failed\): empty.*data_garbage"):
        back = read_cif(path)
    assert len(back) == 3


def test_read_symmetrized_cif(tmp_path):
    from pymatgen.io.cif import CifWriter

    p = tmp_path / "nacl.cif"
    CifWriter(_nacl(), symprec=0.1).write_file(p)  # Fm-3m with 2 unique sites
    assert "Fm-3m" in p.read_text()
    (s,) = read_cif(p)
    assert len(s) == 8 and s.composition.reduced_formula == "NaCl"


def test_extxyz_matches_ase(tmp_path, real_structures):
    ase_io = pytest.importorskip("ase.io")
    with pytest.warns(UserWarning, match="skipped 1"):
        path = write_extxyz([real_structures[0], None, real_structures[3]], tmp_path / "s.extxyz")
    frames = ase_io.read(path, index=":")
    assert len(frames) == 2
    for s, a in zip([real_structures[0], real_structures[3]], frames):
        np.testing.assert_allclose(a.cell[:], s.lattice.matrix, atol=1e-8)
        np.testing.assert_allclose(a.positions, s.cart_coords, atol=1e-8)
        assert a.numbers.tolist() == list(s.atomic_numbers)


def _brute_force(s: Structure, cutoff: float):
    """All (j, offset, distance) with offsets in {-1,0,1}^3 within cutoff, per atom i."""
    cart, m = s.cart_coords, s.lattice.matrix
    out = []
    for i in range(len(s)):
        nb = []
        for j in range(len(s)):
            for off in itertools.product((-1, 0, 1), repeat=3):
                if i == j and off == (0, 0, 0):
                    continue
                d = np.linalg.norm(cart[j] + np.asarray(off) @ m - cart[i])
                if d <= cutoff:
                    nb.append((d, j, off))
        out.append(sorted(nb))
    return out


def _perp_heights(s: Structure) -> np.ndarray:
    m = s.lattice.matrix
    v = abs(np.linalg.det(m))
    return np.array(
        [v / np.linalg.norm(np.cross(m[(k + 1) % 3], m[(k + 2) % 3])) for k in range(3)]
    )


def test_radius_graph_vs_brute_force(real_structures):
    dom = CrystalDomain(max_atoms=24)
    state, ctx = dom.encode(real_structures)
    frac64 = jnp.asarray(
        np.stack([np.pad(s.frac_coords, ((0, 24 - len(s)), (0, 0))) for s in real_structures])
    )
    lat64 = jnp.asarray(np.stack([s.lattice.parameters for s in real_structures]))
    graph = jax.jit(radius_graph_pbc, static_argnames=("cutoff", "max_neighbors"))
    with jax.enable_x64(True):
        g = graph(frac64, lat64, ctx["node_mask"], cutoff=7.0, max_neighbors=20)
        g = jax.tree.map(np.asarray, g)
    assert g["index"].shape == (len(real_structures), 24, 20)
    for b, s in enumerate(real_structures):
        n = len(s)
        assert not g["mask"][b, n:].any()  # padded atoms have no neighbours
        ref = _brute_force(s, 7.0)
        for i in range(n):
            mask = g["mask"][b, i]
            got_d = g["distance"][b, i][mask]
            want_d = np.array([r[0] for r in ref[i][:20]])
            np.testing.assert_allclose(got_d, want_d, atol=1e-6)  # the M nearest, sorted
            assert np.all(g["index"][b, i][mask] < n)  # never a padded atom
            for k in np.flatnonzero(mask):  # each slot is the image it claims to be
                j, off = g["index"][b, i, k], g["offset"][b, i, k]
                v = s.cart_coords[j] + off @ s.lattice.matrix - s.cart_coords[i]
                np.testing.assert_allclose(g["vector"][b, i, k], v, atol=1e-6)
            pairs = {
                (int(j), tuple(o)) for j, o in zip(g["index"][b, i][mask], g["offset"][b, i][mask])
            }
            assert len(pairs) == mask.sum()  # no duplicates
    # float32 state from encode gives the same distances to float32 precision.
    g32 = graph(state["frac"], state["lattice"], ctx["node_mask"], cutoff=7.0, max_neighbors=20)
    np.testing.assert_allclose(np.asarray(g32["distance"]), g["distance"], atol=2e-4)


def test_radius_graph_vs_pymatgen(real_structures):
    """Within the thinnest cell height the 27 cells hold every neighbour: compare to pymatgen."""
    n_max = 24
    graph = jax.jit(radius_graph_pbc, static_argnames="max_neighbors")  # cutoff is traced
    for s in real_structures:
        n = len(s)
        r = float(min(7.0, _perp_heights(s).min() - 1e-3))
        ci, ni, images, _ = s.get_neighbor_list(r)
        frac = jnp.asarray(np.pad(s.frac_coords, ((0, n_max - n), (0, 0)))[None])
        lat = jnp.asarray(np.asarray(s.lattice.parameters)[None])
        mask = jnp.asarray((np.arange(n_max) < n)[None])
        with jax.enable_x64(True):
            g = jax.tree.map(np.asarray, graph(frac, lat, mask, cutoff=r, max_neighbors=27 * n_max))
        got = sorted(
            (i, int(g["index"][0, i, k]), tuple(int(x) for x in g["offset"][0, i, k]))
            for i in range(n)
            for k in np.flatnonzero(g["mask"][0, i])
        )
        want = sorted(
            (int(i), int(j), tuple(int(x) for x in im)) for i, j, im in zip(ci, ni, images)
        )
        assert got == want and len(want) > 0


def test_min_image_distances_and_gradients(real_structures):
    frac = np.stack([np.pad(s.frac_coords, ((0, 24 - len(s)), (0, 0))) for s in real_structures])
    lat = np.stack([s.lattice.parameters for s in real_structures])
    with jax.enable_x64(True):
        d, _ = jax.jit(min_image_distances)(jnp.asarray(frac), jnp.asarray(lat))
        d = np.asarray(d)
    for b, s in enumerate(real_structures):
        np.testing.assert_allclose(d[b, : len(s), : len(s)], s.distance_matrix, atol=1e-8)
    # Gradients stay finite with two coincident atoms (safe norm) and padding.
    frac = jnp.array([[[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.0, 0.0, 0.0]]])
    lat = jnp.array([[3.0, 3.5, 4.0, 80.0, 95.0, 100.0]])
    mask = jnp.array([[1.0, 1.0, 0.0]])

    def energy(f, la):
        g = radius_graph_pbc(f, la, mask, cutoff=5.0, max_neighbors=8)
        return jnp.sum(jnp.where(g["mask"], g["distance"], 0.0))

    gf, gl = jax.jit(jax.grad(energy, argnums=(0, 1)))(frac, lat)
    assert np.all(np.isfinite(gf)) and np.all(np.isfinite(gl)) and np.any(gl != 0)


def test_crystal_arrays_select_and_structures(real_structures):
    arr = CrystalArrays.from_structures(real_structures, niggli=False)  # keep the cells as they are
    sub = arr.select([3, 0])
    assert len(sub) == 2
    assert sub.structure(0).atomic_numbers == real_structures[3].atomic_numbers
    np.testing.assert_allclose(sub.structure(1).frac_coords, real_structures[0].frac_coords)


def test_num_atoms_sampler_follows_training_counts():
    dom = CrystalDomain(max_atoms=24)
    sample = jax.jit(dom.num_atoms_sampler([6, 6, 6, 24]), static_argnums=1)
    ctx = sample(jax.random.key(0), 4000)
    n = np.asarray(ctx["num_atoms"])
    assert set(np.unique(n)) == {6, 24}
    assert abs((n == 6).mean() - 0.75) < 0.03  # 4000 draws: std of the mean ~0.007
    np.testing.assert_array_equal(np.asarray(ctx["node_mask"]).sum(1), n)
    with pytest.raises(ValueError, match="max_atoms"):
        dom.num_atoms_sampler([25])
