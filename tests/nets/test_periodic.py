"""CDVAE periodic networks: symmetries (invariance / equivariance), padding, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genmodels.domains.crystals import lattice_params_to_matrix, radius_graph_pbc
from genmodels.nets.periodic import (
    PeriodicDecoder,
    PeriodicEncoder,
    bessel_rbf,
    lattice_matrix,
    legendre,
    periodic_neighbors,
)

K, LATENT, CUTOFF, M = 5, 4, 6.0, 20
SMALL = dict(
    hidden=8, num_blocks=2, num_rbf=4, cutoff=CUTOFF, max_neighbors=M, num_angular=3, int_emb=4
)
# nearly cubic cells, sides >= 8 A; crystal 1 has 4 real atoms and 2 padding slots
LATTICE = np.array([[8.3, 8.6, 9.0, 89.0, 92.0, 91.0], [8.1, 8.8, 8.4, 91.0, 88.0, 90.5]])
MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], np.float32)
# float32 symmetry errors are <= ~3e-6 of the output scale (checked over several seeds)
TOL = 3e-5
UNIMODULAR = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]], np.float64)


def _build(make, seed):
    """A module with random parameters drawn by numpy: the properties tested hold for any
    parameters, and host draws avoid compiling a random kernel per parameter shape.

    Weights ~ N(0, 1/fan_in) and zero biases (flax's defaults): large random biases would
    swamp the geometric part of the outputs and make the symmetry tests insensitive.
    """
    graphdef, state = nnx.split(nnx.eval_shape(make))
    rng = np.random.default_rng(seed)

    def draw(s):
        if len(s.shape) < 2:
            return jnp.zeros(s.shape, s.dtype)
        fan_in = int(np.prod(s.shape[:-1]))
        return jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in), s.shape), s.dtype)

    return nnx.merge(graphdef, jax.tree.map(draw, state))


def _params_from_matrix(mat):
    """Lattice parameters (Angstrom, degrees) of row vectors [B, 3, 3] (numpy)."""
    lengths = np.linalg.norm(mat, axis=-1)

    def angle(u, v):
        cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
        return np.degrees(np.arccos(cos))

    a, b, c = mat[:, 0], mat[:, 1], mat[:, 2]
    return np.concatenate([lengths, np.stack([angle(b, c), angle(a, c), angle(a, b)], -1)], -1)


def _rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q * np.linalg.det(q)  # det +1


def _crystals(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "types": rng.integers(0, K, size=MASK.shape).astype(np.int32),
        "frac": rng.uniform(size=MASK.shape + (3,)),
        "lattice": LATTICE.copy(),
        "mask": MASK.copy(),
        "matrix": None,
        "z": rng.normal(size=(MASK.shape[0], LATENT)),
    }


def _neighbour_counts_brute_force(frac, mat, mask, cutoff):
    """Neighbours within ``cutoff`` over 7^3 cells (float64), per atom [B, N]."""
    rng = np.arange(-3, 4)
    offs = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 3)
    f = frac - np.floor(frac)
    cart = np.einsum("bni,bij->bnj", f, mat)
    shifts = np.einsum("ki,bij->bkj", offs, mat)
    vec = cart[:, None, :, None] + shifts[:, None, None] - cart[:, :, None, None]
    d = np.linalg.norm(vec, axis=-1)  # [B, N, N, 343]
    live = mask > 0
    ok = live[:, :, None, None] & live[:, None, :, None] & (d <= cutoff) & (d > 1e-9)
    return ok.sum((2, 3))


@pytest.fixture(scope="module")
def run():
    enc = _build(lambda: PeriodicEncoder(K, out_dim=4, basis_emb=2, **SMALL, rngs=nnx.Rngs(0)), 0)
    dec = _build(lambda: PeriodicDecoder(K, LATENT, basis_emb=3, **SMALL, rngs=nnx.Rngs(0)), 1)

    @jax.jit
    def forward(types, frac, lattice, mask, matrix, z):
        out = enc(types, frac, lattice, mask, lattice_matrix=matrix)
        score, logits = dec(z, types, frac, lattice, mask, lattice_matrix=matrix)
        return out, score, logits

    def call(c):
        args = [c["types"], c["frac"], c["lattice"], c["mask"], c["matrix"], c["z"]]
        args = [a if a is None or a.dtype.kind == "i" else np.float32(a) for a in args]
        return [np.asarray(x, np.float64) for x in forward(*args)]

    return call


def _close(got, want, rel=TOL):
    scale = np.abs(want).max()
    assert scale > 1e-6, "output is trivially zero"
    np.testing.assert_allclose(got, want, rtol=0, atol=rel * scale)


def test_lattice_matrix_matches_domain():
    np.testing.assert_allclose(
        np.asarray(lattice_matrix(jnp.asarray(LATTICE, jnp.float32))),
        np.asarray(lattice_params_to_matrix(jnp.asarray(LATTICE, jnp.float32))),
        atol=1e-5,
    )


@pytest.mark.parametrize("transform", ["identity", "unimodular"])
def test_neighbors_match_radius_graph_and_are_complete(transform):
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    search = jax.jit(periodic_neighbors, static_argnames=("cutoff", "max_neighbors"))
    reference = jax.jit(radius_graph_pbc, static_argnames=("cutoff", "max_neighbors"))
    for seed in (1, 2, 4, 7):  # the crystals of the tests below
        mat = np.asarray(lattice_params_to_matrix(jnp.asarray(LATTICE)), np.float64)
        frac, lat = _crystals(seed)["frac"], LATTICE
        if transform == "unimodular":
            mat, frac = UNIMODULAR @ mat, frac @ np.linalg.inv(UNIMODULAR)
            lat = _params_from_matrix(mat)
            mat = np.asarray(lattice_params_to_matrix(jnp.asarray(lat)), np.float64)
        frac = frac - np.floor(frac)
        index, vec, mask = search(f32(frac), f32(mat), f32(MASK), cutoff=CUTOFF, max_neighbors=M)
        ref = reference(f32(frac), f32(lat), f32(MASK), cutoff=CUTOFF, max_neighbors=M)
        np.testing.assert_array_equal(np.asarray(mask), np.asarray(ref["mask"]))
        np.testing.assert_array_equal(np.asarray(index), np.asarray(ref["index"]))
        np.testing.assert_allclose(np.asarray(vec), np.asarray(ref["vector"]), atol=1e-4)
        counts = np.asarray(mask).sum(-1)
        # the test cells lose no neighbour to the 27-cell search, and M never truncates
        brute = _neighbour_counts_brute_force(frac, mat, MASK, CUTOFF)
        np.testing.assert_array_equal(counts, brute)
        assert counts.max() < M and counts[MASK > 0].min() >= 2  # every atom has triplets


def test_bessel_and_legendre():
    c = 5.0
    d = jnp.asarray([0.7, 2.5, 4.9, 5.0, 6.0])
    e = np.asarray(bessel_rbf(d, 3, c))
    x = np.asarray(d) / c
    u = 1 - 28 * x**6 + 48 * x**7 - 21 * x**8
    n = np.arange(1, 4)
    want = np.sqrt(2 / c) * np.sin(n * np.pi * x[:, None]) / np.asarray(d)[:, None] * u[:, None]
    want[x >= 1] = 0.0
    np.testing.assert_allclose(e, want, atol=1e-5)
    g = jax.grad(lambda r: bessel_rbf(r, 3, c).sum())(jnp.asarray([0.0, 4.999]))
    assert np.all(np.isfinite(np.asarray(g))) and abs(float(g[1])) < 1e-3  # smooth cutoff
    t = np.linspace(-1, 1, 7)
    leg = np.asarray(legendre(jnp.asarray(t), 4))
    for ell in range(4):
        np.testing.assert_allclose(
            leg[:, ell], np.polynomial.legendre.legval(t, np.eye(4)[ell]), atol=1e-5
        )


def test_shapes_and_padding(run):
    c = _crystals(1)
    out, score, logits = run(c)
    assert out.shape == (2, 4) and score.shape == (2, 6, 3) and logits.shape == (2, 6, K)
    pad = MASK == 0
    assert np.all(score[pad] == 0) and np.all(logits[pad] == 0)
    assert np.all(np.isfinite(out)) and np.abs(score[~pad]).min() > 0
    # params path == explicit matrix path
    _, *c2 = run({**c, "matrix": np.asarray(lattice_matrix(jnp.asarray(LATTICE, jnp.float32)))})
    for got, want in zip(c2, (score, logits)):
        _close(got, want)


def test_outputs_depend_on_geometry(run):
    """Control for the symmetry tests: moving one atom by 0.3 A or stretching the cell by
    5% changes every output (type logits least, at about 1e-3) by well over ``TOL``."""
    c = _crystals(2)
    want = run(c)
    moved = {**c, "frac": c["frac"].copy()}
    moved["frac"][:, 0] += 0.3 / LATTICE[:, :3]
    stretched = {**c, "lattice": LATTICE * np.array([1.05, 1, 1, 1, 1, 1])}
    for c2 in (moved, stretched):
        for g, w in zip(run(c2), want):
            assert np.abs(g - w).max() > 10 * TOL * np.abs(w).max()


def _transform(name, c):
    """Transformed inputs and the map taking original (out, score, logits) to expected."""
    c = dict(c)
    ident = lambda out, score, logits: (out, score, logits)
    if name == "permutation":
        perm = np.random.default_rng(5).permutation(c["mask"].shape[1])  # mixes padding in
        for k in ("types", "frac", "mask"):
            c[k] = c[k][:, perm]
        return c, lambda out, score, logits: (out, score[:, perm], logits[:, perm])
    if name == "rotation":
        rot = _rotation(6)
        mat = np.asarray(lattice_params_to_matrix(jnp.asarray(c["lattice"])), np.float64)
        c["matrix"] = mat @ rot.T
        return c, lambda out, score, logits: (out, score @ rot.T, logits)
    if name == "translation":
        c["frac"] = c["frac"] + np.array([0.37, -0.81, 0.52])
        return c, ident
    if name == "lattice_shift":
        c["frac"] = c["frac"].copy()
        c["frac"][:, 1] += np.array([1.0, -1.0, 2.0])
        c["frac"][:, 2] -= np.array([0.0, 0.0, 1.0])
        return c, ident
    if name == "unimodular":  # another basis of the same lattice, same Cartesian frame
        mat = np.asarray(lattice_params_to_matrix(jnp.asarray(c["lattice"])), np.float64)
        c["matrix"] = UNIMODULAR @ mat
        c["frac"] = c["frac"] @ np.linalg.inv(UNIMODULAR)
        return c, ident
    if name == "unimodular_params":  # the same, through lattice parameters: a new frame
        mat = UNIMODULAR @ np.asarray(lattice_params_to_matrix(jnp.asarray(c["lattice"])))
        c["lattice"] = _params_from_matrix(mat)
        c["frac"] = c["frac"] @ np.linalg.inv(UNIMODULAR)
        return c, None  # only the invariant outputs are compared
    raise ValueError(name)


TRANSFORMS = [
    "permutation",
    "rotation",
    "translation",
    "lattice_shift",
    "unimodular",
    "unimodular_params",
]


@pytest.mark.parametrize("name", TRANSFORMS)
def test_invariance_and_equivariance(run, name):
    """Encoder output and type logits invariant; coordinate scores permute with the atoms,
    rotate with the Cartesian frame (score' = score R^T) and ignore translations, lattice
    shifts and the choice of cell basis."""
    c = _crystals(2)
    out, score, logits = run(c)
    c2, expect = _transform(name, c)
    got = run(c2)
    if expect is None:
        _close(got[0], out)
        _close(got[2], logits)
        return
    for g, w in zip(got, expect(out, score, logits)):
        _close(g, w)


def test_appended_padding_atom_changes_nothing(run):
    """A padding slot, even one sitting on a real atom, leaves the real outputs unchanged."""
    c = _crystals(4)
    out, score, logits = run(c)
    c2 = dict(c)
    c2["types"] = np.concatenate([c["types"], np.full((2, 1), K - 1, np.int32)], 1)
    c2["frac"] = np.concatenate([c["frac"], c["frac"][:, :1]], 1)  # on top of atom 0
    c2["mask"] = np.concatenate([c["mask"], np.zeros((2, 1), np.float32)], 1)
    out2, score2, logits2 = run(c2)
    _close(out2, out)
    _close(score2[:, :6], score)
    _close(logits2[:, :6], logits)
    assert np.all(score2[:, 6] == 0) and np.all(logits2[:, 6] == 0)


def test_int_and_one_hot_types_agree(run):
    c = _crystals(7)
    want = run(c)
    onehot = np.eye(K, dtype=np.float32)[c["types"]] * c["mask"][..., None]
    got = run({**c, "types": onehot})
    for g, w in zip(got, want):
        _close(g, w)


def test_gradients_finite_with_coincident_atoms():
    """Finite gradients w.r.t. parameters, fractional coordinates and the lattice when two
    real atoms coincide and a padding atom sits on a real one."""
    enc = _build(lambda: PeriodicEncoder(K, out_dim=4, basis_emb=2, **SMALL, rngs=nnx.Rngs(0)), 2)
    dec = _build(lambda: PeriodicDecoder(K, LATENT, basis_emb=3, **SMALL, rngs=nnx.Rngs(0)), 3)
    c = _crystals(8)
    frac = c["frac"].copy()
    frac[0, 1] = frac[0, 0]  # two real atoms at distance 0
    frac[1, 5] = frac[1, 0]  # padding on a real atom
    frac[1, 4] = 0.0
    args = [jnp.asarray(c["types"]), jnp.asarray(c["mask"]), jnp.asarray(c["z"], jnp.float32)]

    graphdef, params = nnx.split((enc, dec))

    def loss(params, frac, lattice, types, mask, z):
        e, d = nnx.merge(graphdef, params)
        score, logits = d(z, types, frac, lattice, mask)
        return e(types, frac, lattice, mask).sum() + (score**2).sum() + logits.sum()

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
    gm, gf, gl = grad(
        params, jnp.asarray(frac, jnp.float32), jnp.asarray(LATTICE, jnp.float32), *args
    )
    leaves = jax.tree.leaves(gm)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
    assert sum(float(jnp.abs(x).sum()) for x in leaves) > 0
    assert np.all(np.isfinite(np.asarray(gf))) and np.all(np.isfinite(np.asarray(gl)))
    assert np.abs(np.asarray(gf)[MASK > 0]).max() > 0
