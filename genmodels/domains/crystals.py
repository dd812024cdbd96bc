"""Periodic crystals as padded arrays: the CDVAE domain adapter.

A crystal is a lattice (three lengths in Angstrom and three angles in degrees), fractional
coordinates in [0, 1) and atom types (Xie, Fu, Ganea, Barzilay, Jaakkola, *Crystal
Diffusion Variational Autoencoder for Periodic Material Generation*, ICLR 2022, Sec. 3).
A batch becomes the state

- ``frac`` [B, N, 3] fractional coordinates,
- ``types`` [B, N, K] one-hot atom types (class ``Z - 1`` for atomic number ``Z``), or
  [B, N] int32 class indices with ``one_hot_types=False``,
- ``lattice`` [B, 6] ``(a, b, c, alpha, beta, gamma)``,

and the context ``{"num_atoms": [B], "node_mask": [B, N], "masks": {"frac", "types"}}``
with ``N = max_atoms`` padding (CDVAE ``max_atoms``: perov_5 20, carbon_24 24, mp_20 20,
``conf/data/*.yaml``). The lattice is never padded, so it has no mask.

Canonical cell (CDVAE ``cdvae/common/data_utils.py::build_crystal``): the CIF cell is
optionally replaced by its primitive cell (``Structure.get_primitive_structure``), then
Niggli-reduced (``Structure.get_reduced_structure()``, whose default algorithm is Niggli),
then rebuilt from its six lattice parameters with ``Lattice.from_parameters``, which fixes
the orientation (``a`` in the x-z plane, ``c`` along z; CDVAE's
``lattice_params_to_matrix``). CDVAE sets ``niggli: true`` and ``primitive: false`` for all
three benchmarks (``conf/data/{perov,carbon,mp_20}.yaml``), so those are the defaults.

:func:`radius_graph_pbc` builds the periodic neighbour lists of CDVAE's decoder
(``radius_graph_pbc`` there, with ``radius: 7`` and ``max_neighbors: 20`` in
``conf/model/vae.yaml``) with static shapes, inside ``jax.jit``.

Sample files: :func:`write_cif` / :func:`read_cif` (one file with several ``data_``
blocks), :func:`write_extxyz`, and compositions one formula a line
(:func:`write_compositions` / :func:`read_compositions`).
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from pymatgen.core import Composition, Element, Lattice, Structure
from pymatgen.io.cif import CifParser, CifWriter

from genmodels.core.masks import apply_masks
from genmodels.core.types import Array, Context, State
from genmodels.domains.files import read_text
from genmodels.errors import DataError

__all__ = [
    "CELL_OFFSETS",
    "CrystalArrays",
    "CrystalDomain",
    "as_composition",
    "canonical_structure",
    "cart_to_frac",
    "frac_to_cart",
    "lattice_params_to_matrix",
    "min_image_displacement",
    "min_image_distances",
    "node_mask",
    "radius_graph_pbc",
    "read_cif",
    "sample_composition",
    "read_compositions",
    "wrap_frac",
    "write_cif",
    "write_compositions",
    "write_extxyz",
]

#: The 27 cell offsets in {-1, 0, 1}^3, in CDVAE's ``OFFSET_LIST`` order (lexicographic).
CELL_OFFSETS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.int32)  # [27, 3]
_ZERO_OFFSET = 13  # index of (0, 0, 0) in CELL_OFFSETS


# ----------------------------------------------------------------------------- lattice math


def lattice_params_to_matrix(lattice: Array) -> Array:
    """Lattice vectors (rows) from lengths and angles, CDVAE's / pymatgen's convention.

    ``a = (a sin(beta), 0, a cos(beta))``, ``b = (-b sin(alpha) cos(gamma*), b sin(alpha)
    sin(gamma*), b cos(alpha))``, ``c = (0, 0, c)`` with ``cos(gamma*) = (cos(alpha)
    cos(beta) - cos(gamma)) / (sin(alpha) sin(beta))`` clipped to [-1, 1] (CDVAE
    ``lattice_params_to_matrix_torch``; pymatgen ``Lattice.from_parameters``).

    Args:
      lattice: [..., 6] ``(a, b, c, alpha, beta, gamma)``, Angstrom and degrees.

    Returns:
      [..., 3, 3] matrix whose rows are the lattice vectors (Cartesian = frac @ matrix).
    """
    lattice = jnp.asarray(lattice)
    lengths, angles = lattice[..., :3], jnp.deg2rad(lattice[..., 3:])
    cos, sin = jnp.cos(angles), jnp.sin(angles)  # [..., 3]
    val = (cos[..., 0] * cos[..., 1] - cos[..., 2]) / (sin[..., 0] * sin[..., 1])
    gamma_star = jnp.arccos(jnp.clip(val, -1.0, 1.0))
    a, b, c = lengths[..., 0], lengths[..., 1], lengths[..., 2]
    zero = jnp.zeros_like(a)
    va = jnp.stack([a * sin[..., 1], zero, a * cos[..., 1]], -1)
    vb = jnp.stack(
        [
            -b * sin[..., 0] * jnp.cos(gamma_star),
            b * sin[..., 0] * jnp.sin(gamma_star),
            b * cos[..., 0],
        ],
        -1,
    )
    vc = jnp.stack([zero, zero, c], -1)
    return jnp.stack([va, vb, vc], -2)


def frac_to_cart(frac: Array, lattice: Array) -> Array:
    """Cartesian coordinates ``frac @ L`` (Angstrom).

    Args:
      frac: [B, N, 3] fractional coordinates.
      lattice: [B, 6] lattice parameters.

    Returns:
      [B, N, 3].
    """
    return jnp.einsum("bni,bij->bnj", frac, lattice_params_to_matrix(lattice))


def wrap_frac(frac: Array) -> Array:
    """Wrap fractional coordinates into [0, 1).

    ``x - floor(x)`` can round to exactly 1.0 for a tiny negative ``x`` in float32, so that
    case is mapped to 0.0 (the same point of the torus).

    Args:
      frac: array of fractional coordinates (any shape), numpy or JAX.

    Returns:
      The same type and shape with every entry in [0, 1).
    """
    if isinstance(frac, np.ndarray):
        w = frac - np.floor(frac)
        return np.where(w >= 1.0, 0.0, w).astype(frac.dtype)
    w = frac - jnp.floor(frac)
    return jnp.where(w >= 1.0, jnp.zeros_like(w), w)


def cart_to_frac(cart: Array, mat: Array) -> Array:
    """Wrapped fractional coordinates ``wrap(cart @ pinv(L))`` (CDVAE
    ``cart_to_frac_coords``: the pseudo-inverse, then ``% 1``).

    Args:
      cart: [B, N, 3] Cartesian coordinates.
      mat: [B, 3, 3] lattice matrices (:func:`lattice_params_to_matrix`).

    Returns:
      [B, N, 3] in [0, 1).
    """
    return wrap_frac(jnp.einsum("bni,bij->bnj", cart, jnp.linalg.pinv(mat)))


def node_mask(num_atoms: Array, n: int) -> Array:
    """[B, n] float32 mask, 1 on the first ``num_atoms`` [B] atoms of each crystal."""
    return (jnp.arange(n)[None, :] < jnp.asarray(num_atoms)[:, None]).astype(jnp.float32)


def _pair_vectors(frac: Array, lattice: Array) -> Array:
    """Displacements ``r_j + n L - r_i`` for all pairs and the 27 cell offsets n.

    Returns:
      [B, N(i), N(j), 27, 3].
    """
    mat = lattice_params_to_matrix(lattice)  # [B, 3, 3]
    cart = jnp.einsum("bni,bij->bnj", frac, mat)  # [B, N, 3]
    shifts = jnp.einsum("ki,bij->bkj", jnp.asarray(CELL_OFFSETS, mat.dtype), mat)  # [B, 27, 3]
    return (
        cart[:, None, :, None, :] + shifts[:, None, None, :, :] - cart[:, :, None, None, :]
    )  # [B, N, N, 27, 3]


def _safe_norm(v: Array) -> Array:
    # sqrt has an infinite derivative at 0; keep gradients finite for coincident atoms.
    sq = jnp.sum(v * v, axis=-1)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def min_image_distances(frac: Array, lattice: Array) -> tuple[Array, Array]:
    """Minimum-image distances between all atom pairs over the 27 neighbouring cells.

    This is the distance CDVAE's ``min_distance_sqr_pbc`` uses (27 offsets); for Niggli-
    reduced cells it equals pymatgen's ``Structure.distance_matrix``.

    Args:
      frac: [B, N, 3] fractional coordinates.
      lattice: [B, 6] lattice parameters.

    Returns:
      ``(dist, vec)``: [B, N, N] distances (0 on the diagonal) and [B, N, N, 3] the
      shortest displacement from atom i to an image of atom j.
    """
    vec = _pair_vectors(frac, lattice)  # [B, N, N, 27, 3]
    d = _safe_norm(vec)  # [B, N, N, 27]
    k = jnp.argmin(d, axis=-1)  # [B, N, N]
    dist = jnp.take_along_axis(d, k[..., None], axis=-1)[..., 0]
    v = jnp.take_along_axis(vec, k[..., None, None], axis=-2)[..., 0, :]
    return dist, v


def min_image_displacement(frac_a: Array, frac_b: Array, lattice: Array) -> Array:
    """Per-atom shortest periodic displacement from atom ``b`` to atom ``a``.

    ``a - (b + n L)`` over the 27 offsets ``n``, the one of least length (CDVAE
    ``min_distance_sqr_pbc(..., return_vector=True)``, which returns ``pos1 - (pos2 +
    offset)``).

    Args:
      frac_a, frac_b: [B, N, 3] fractional coordinates of the same atoms.
      lattice: [B, 6] lattice parameters.

    Returns:
      [B, N, 3] Cartesian displacements (Angstrom).
    """
    mat = lattice_params_to_matrix(lattice)  # [B, 3, 3]
    ca = jnp.einsum("bni,bij->bnj", frac_a, mat)
    cb = jnp.einsum("bni,bij->bnj", frac_b, mat)
    shifts = jnp.einsum("ki,bij->bkj", jnp.asarray(CELL_OFFSETS, mat.dtype), mat)  # [B, 27, 3]
    vec = ca[:, :, None, :] - cb[:, :, None, :] - shifts[:, None, :, :]  # [B, N, 27, 3]
    k = jnp.argmin(jnp.sum(vec * vec, axis=-1), axis=-1)  # [B, N]
    return jnp.take_along_axis(vec, k[..., None, None], axis=2)[:, :, 0, :]


def radius_graph_pbc(
    frac: Array,
    lattice: Array,
    node_mask: Array | None = None,
    *,
    cutoff: float = 7.0,
    max_neighbors: int = 20,
) -> dict[str, Array]:
    """Periodic radius graph with static shapes: the M nearest images within ``cutoff``.

    Every atom j and each of its images in the 27 cells with offsets in {-1, 0, 1}^3 is a
    candidate neighbour of atom i; candidates farther than ``cutoff`` or on padding are
    dropped, and the ``max_neighbors`` nearest remain (CDVAE ``radius_graph_pbc`` with
    ``radius=7``, ``max_num_neighbors_threshold=20``). As there, an image two or more cells
    away is never found, so a cell thinner than ``cutoff`` misses some neighbours.

    One difference: CDVAE drops a candidate as "the same atom" when its distance is at most
    0.01 Angstrom; here only the atom itself in its own cell (i == j, offset 0) is dropped,
    so two distinct atoms that collide still see each other.

    Args:
      frac: [B, N, 3] fractional coordinates.
      lattice: [B, 6] lattice parameters (Angstrom, degrees).
      node_mask: [B, N] with 1 on real atoms, or ``None`` (all real).
      cutoff: radius in Angstrom (a Python float or a traced scalar).
      max_neighbors: M, neighbours kept per atom (static under ``jax.jit``).

    Returns:
      dict of
        ``index`` [B, N, M] int32 neighbour atom j,
        ``offset`` [B, N, M, 3] int32 its cell offset n,
        ``vector`` [B, N, M, 3] displacement ``r_j + n L - r_i`` (Angstrom; differentiable),
        ``distance`` [B, N, M] its length,
        ``mask`` [B, N, M] bool, True for real neighbours;
      entries are sorted by distance, and unused slots are zero with ``mask`` False.
    """
    b, n, _ = frac.shape
    if node_mask is None:
        node_mask = jnp.ones((b, n), dtype=bool)
    node_mask = jnp.asarray(node_mask) > 0
    vec = _pair_vectors(frac, lattice)  # [B, N, N, 27, 3]
    d2 = jnp.sum(vec * vec, axis=-1)  # [B, N, N, 27]
    not_self = ~(
        jnp.eye(n, dtype=bool)[:, :, None] & (jnp.arange(27) == _ZERO_OFFSET)[None, None, :]
    )  # [N, N, 27]
    valid = (
        node_mask[:, :, None, None]
        & node_mask[:, None, :, None]
        & not_self[None]
        & (d2 <= cutoff * cutoff)
    )  # [B, N, N, 27]
    cand = n * 27
    key = jnp.where(valid, d2, jnp.inf).reshape(b, n, cand)  # [B, N, N*27]
    k = min(max_neighbors, cand)
    neg, idx = jax.lax.top_k(-key, k)  # [B, N, k], nearest first
    sel = jnp.isfinite(neg)  # [B, N, k]
    v = jnp.take_along_axis(vec.reshape(b, n, cand, 3), idx[..., None], axis=2)  # [B, N, k, 3]
    v = jnp.where(sel[..., None], v, 0.0)
    j = jnp.where(sel, idx // 27, 0).astype(jnp.int32)
    off = jnp.where(sel[..., None], jnp.asarray(CELL_OFFSETS)[idx % 27], 0).astype(jnp.int32)
    dist = jnp.where(sel, _safe_norm(v), 0.0)
    if k < max_neighbors:  # fewer candidates than slots: pad with empty slots
        pad = max_neighbors - k
        j = jnp.pad(j, ((0, 0), (0, 0), (0, pad)))
        off = jnp.pad(off, ((0, 0), (0, 0), (0, pad), (0, 0)))
        v = jnp.pad(v, ((0, 0), (0, 0), (0, pad), (0, 0)))
        dist = jnp.pad(dist, ((0, 0), (0, 0), (0, pad)))
        sel = jnp.pad(sel, ((0, 0), (0, 0), (0, pad)))
    return {"index": j, "offset": off, "vector": v, "distance": dist, "mask": sel}


def sample_composition(key: Array, probs: Array, num_atoms: Array, max_atoms: int) -> Array:
    """Atom types that follow a predicted composition exactly where rounding allows.

    CDVAE ``sample_composition``: per crystal, ``c_k = round(p_k N)`` atoms of type ``k``;
    if that gives fewer than ``N`` atoms, the rest are drawn with replacement from the
    leftover ``max(p_k - c_k / N, 0)``; the list is shuffled and its first ``N`` kept
    (which also trims a rounding excess). Static shapes: a buffer of ``max_atoms +
    num_types`` slots always holds the list (``sum_k round(p_k N) <= N + K/2``).

    Args:
      key: PRNG key.
      probs: [B, K] composition probabilities.
      num_atoms: [B] atom counts in 1..max_atoms.
      max_atoms: padding size N.

    Returns:
      [B, max_atoms] int32 type classes, 0 on padding.
    """
    b, k = probs.shape
    slots = max_atoms + k
    pos = jnp.arange(slots)

    def one(key, p, n):
        kl, kp = jax.random.split(key)
        nf = n.astype(jnp.float32)
        counts = jnp.round(p * nf).astype(jnp.int32)  # [K], half to even as torch.round
        total = jnp.sum(counts)
        rounded = jnp.searchsorted(jnp.cumsum(counts), pos, side="right")  # [S]
        left = jnp.maximum(p - counts / nf, 0.0)
        logits = jnp.where(left > 0, jnp.log(jnp.where(left > 0, left, 1.0)), -jnp.inf)
        extra = jax.random.categorical(kl, logits, shape=(slots,))  # [S]
        seq = jnp.where(pos < total, rounded, extra)
        valid = pos < jnp.maximum(total, n)
        u = jnp.where(valid, jax.random.uniform(kp, (slots,)), 2.0)
        out = seq[jnp.argsort(u)][:max_atoms]
        return jnp.where(jnp.arange(max_atoms) < n, out, 0).astype(jnp.int32)

    return jax.vmap(one)(jax.random.split(key, b), probs, num_atoms.astype(jnp.int32))


# ------------------------------------------------------------------------ structures <-> arrays


def canonical_structure(
    structure: Structure, *, niggli: bool = True, primitive: bool = False
) -> Structure:
    """CDVAE's canonical cell of a structure (``build_crystal``).

    Args:
      structure: an ordered pymatgen structure.
      niggli: Niggli-reduce the lattice (CDVAE default ``True``).
      primitive: first replace the cell by its primitive cell (CDVAE default ``False``).

    Returns:
      A new structure on ``Lattice.from_parameters(*lattice.parameters)`` with the same
      species and fractional coordinates wrapped into [0, 1).
    """
    s = structure
    if primitive:
        s = s.get_primitive_structure()
    if niggli:
        s = s.get_reduced_structure()
    return Structure(
        Lattice.from_parameters(*s.lattice.parameters),
        s.species,
        wrap_frac(np.asarray(s.frac_coords, dtype=np.float64)),
        coords_are_cartesian=False,
    )


@dataclass(frozen=True)
class CrystalArrays:
    """A ragged batch of crystals in flat (CDVAE-style) arrays.

    Attributes:
      frac: [T, 3] float64 fractional coordinates of all atoms, crystal after crystal.
      atomic_numbers: [T] int64.
      num_atoms: [C] int64 atoms per crystal (sums to T).
      lattice: [C, 6] float64 ``(a, b, c, alpha, beta, gamma)``.
    """

    frac: np.ndarray
    atomic_numbers: np.ndarray
    num_atoms: np.ndarray
    lattice: np.ndarray

    def __len__(self) -> int:
        return int(self.num_atoms.shape[0])

    @property
    def offsets(self) -> np.ndarray:
        """[C + 1] start of each crystal in the flat atom arrays."""
        return np.concatenate([[0], np.cumsum(self.num_atoms)]).astype(np.int64)

    @classmethod
    def from_structures(
        cls, structures: Iterable[Structure], *, niggli: bool = True, primitive: bool = False
    ) -> CrystalArrays:
        """Canonicalize (:func:`canonical_structure`) and flatten structures.

        Raises:
          ValueError: a disordered structure (partial occupancies) or one with no site.
        """
        fr, zs, ns, lat = [], [], [], []
        for i, s in enumerate(structures):
            if not s.is_ordered:
                raise ValueError(
                    f"structure {i} is disordered; only ordered crystals are supported"
                )
            if len(s) == 0:
                raise ValueError(f"structure {i} has no sites")
            c = canonical_structure(s, niggli=niggli, primitive=primitive)
            fr.append(np.asarray(c.frac_coords, np.float64))
            zs.append(np.asarray(c.atomic_numbers, np.int64))
            ns.append(len(c))
            lat.append(np.asarray(c.lattice.parameters, np.float64))
        return cls(
            frac=np.concatenate(fr) if fr else np.zeros((0, 3)),
            atomic_numbers=np.concatenate(zs) if zs else np.zeros((0,), np.int64),
            num_atoms=np.asarray(ns, np.int64),
            lattice=np.asarray(lat, np.float64).reshape(-1, 6),
        )

    def structure(self, i: int) -> Structure:
        """Crystal ``i`` as a pymatgen structure."""
        o = self.offsets
        return Structure(
            Lattice.from_parameters(*self.lattice[i]),
            self.atomic_numbers[o[i] : o[i + 1]].tolist(),
            self.frac[o[i] : o[i + 1]],
            coords_are_cartesian=False,
        )

    def to_structures(self) -> list[Structure]:
        """All crystals as pymatgen structures."""
        return [self.structure(i) for i in range(len(self))]

    def select(self, indices: Sequence[int]) -> CrystalArrays:
        """The crystals at ``indices``, in that order."""
        o = self.offsets
        idx = np.asarray(indices, np.int64)
        atoms = (
            np.concatenate([np.arange(o[i], o[i + 1]) for i in idx])
            if idx.size
            else np.zeros((0,), np.int64)
        )
        return CrystalArrays(
            frac=self.frac[atoms],
            atomic_numbers=self.atomic_numbers[atoms],
            num_atoms=self.num_atoms[idx],
            lattice=self.lattice[idx],
        )


@dataclass(frozen=True)
class CrystalDomain:
    """Adapter between pymatgen structures and the padded crystal state.

    Args:
      max_atoms: padded atom count N (CDVAE: perov_5 20, carbon_24 24, mp_20 20).
      num_types: K atom classes; class ``k`` is atomic number ``k + 1`` (100 covers
        H..Fm; CDVAE's type head has ``MAX_ATOMIC_NUM = 100``).
      niggli: Niggli-reduce on encode (CDVAE default).
      primitive: use the primitive cell on encode (CDVAE default off).
      one_hot_types: ``types`` as [B, N, K] float32 one-hot (default) or [B, N] int32.
    """

    max_atoms: int
    num_types: int = 100
    niggli: bool = True
    primitive: bool = False
    one_hot_types: bool = True

    def context(self, num_atoms: Array) -> dict:
        """The sampling context for given atom counts (jit-compatible).

        Args:
          num_atoms: [B] integer atom counts in 1..max_atoms.

        Returns:
          ``{"num_atoms": [B] int32, "node_mask": [B, N], "masks": {"frac": [B, N, 1],
          "types": [B, N, 1] or [B, N]}}``.
        """
        num_atoms = jnp.asarray(num_atoms).astype(jnp.int32)
        m = node_mask(num_atoms, self.max_atoms)  # [B, N]
        tmask = m[..., None] if self.one_hot_types else m
        return {
            "num_atoms": num_atoms,
            "node_mask": m,
            "masks": {"frac": m[..., None], "types": tmask},
        }

    def num_atoms_sampler(self, train_counts: Sequence[int] | np.ndarray):
        """A sampler of contexts whose atom counts follow the training crystals.

        CDVAE predicts the atom count from its latent; a model without that head draws
        counts from the empirical training distribution instead (as DiffCSP-style
        generation does).

        Args:
          train_counts: atom count of each training crystal (1..max_atoms).

        Returns:
          ``sample(key, batch_size) -> ctx`` (:meth:`context`), pure and jit-compatible
          with ``batch_size`` static.

        Raises:
          ValueError: no counts, or a count outside 1..max_atoms.
        """
        counts = np.asarray(train_counts, np.int32).reshape(-1)
        if counts.size == 0:
            raise ValueError("num_atoms_sampler needs at least one training count")
        if counts.min() < 1 or counts.max() > self.max_atoms:
            raise ValueError(
                f"training atom counts span {counts.min()}..{counts.max()}, outside "
                f"1..max_atoms={self.max_atoms}"
            )

        def sample(key: Array, batch_size: int) -> dict:
            # host counts in the closure: a jnp array made during one trace would leak
            idx = jax.random.randint(key, (batch_size,), 0, counts.shape[0])
            return self.context(jnp.asarray(counts)[idx])

        return sample

    def to_arrays(self, structures: Iterable[Structure]) -> CrystalArrays:
        """Canonical flat arrays of ``structures`` with this domain's cell settings."""
        return CrystalArrays.from_structures(
            structures, niggli=self.niggli, primitive=self.primitive
        )

    def encode(self, structures: Sequence[Structure]) -> tuple[State, dict]:
        """Canonicalize and pad a list of structures.

        Args:
          structures: B ordered structures with 1..max_atoms sites and atomic numbers in
            1..num_types.

        Returns:
          ``(state, ctx)`` as described in the module docstring (float32, zero padding).

        Raises:
          ValueError: empty list, disordered structure, too many atoms, unknown element.
        """
        if len(structures) == 0:
            raise ValueError("no structures to encode (empty list)")
        return self.encode_arrays(self.to_arrays(structures))

    def encode_arrays(self, arrays: CrystalArrays) -> tuple[State, dict]:
        """Pad already canonical flat arrays (as cached by the dataset loaders).

        Args:
          arrays: a :class:`CrystalArrays` batch.

        Returns:
          ``(state, ctx)`` as :meth:`encode`.

        Raises:
          ValueError: an empty batch, a crystal with more than ``max_atoms`` atoms, or an
            atomic number outside 1..num_types.
        """
        c = len(arrays)
        if c == 0:
            raise ValueError("no crystals to encode (empty batch)")
        counts = np.asarray(arrays.num_atoms)
        if counts.min() < 1 or counts.max() > self.max_atoms:
            i = int(np.argmax((counts < 1) | (counts > self.max_atoms)))
            raise ValueError(
                f"crystal {i} has {counts[i]} atoms, outside 1..max_atoms={self.max_atoms}"
            )
        z = np.asarray(arrays.atomic_numbers)
        if z.size and (z.min() < 1 or z.max() > self.num_types):
            raise ValueError(
                f"atomic numbers span {z.min()}..{z.max()}, outside 1..num_types={self.num_types}"
            )
        frac = np.zeros((c, self.max_atoms, 3), np.float32)
        cls = np.zeros((c, self.max_atoms), np.int32)
        o = arrays.offsets
        for i in range(c):
            n = counts[i]
            frac[i, :n] = wrap_frac(arrays.frac[o[i] : o[i + 1]])
            cls[i, :n] = z[o[i] : o[i + 1]] - 1
        ctx = self.context(counts)
        m = np.asarray(ctx["node_mask"])
        if self.one_hot_types:
            types = np.eye(self.num_types, dtype=np.float32)[cls] * m[..., None]
        else:
            types = (cls * m).astype(np.int32)
        state = {
            "frac": jnp.asarray(frac),
            "types": jnp.asarray(types),
            "lattice": jnp.asarray(arrays.lattice, jnp.float32),
        }
        return state, ctx

    def atomic_numbers(self, state: State) -> np.ndarray:
        """[B, N] atomic numbers (argmax of one-hot ``types`` + 1); padding not removed."""
        t = np.asarray(state["types"])
        cls = np.argmax(t, axis=-1) if self.one_hot_types else t.astype(np.int64)
        return cls.astype(np.int64) + 1

    def decode(self, state: State, ctx: Context) -> list[Structure | None]:
        """Turn a (generated) batch back into structures.

        Fractional coordinates are wrapped into [0, 1) and types are the argmax class
        (one-hot) or the class index; padding (beyond ``num_atoms``) is dropped. A crystal
        whose lattice is non-finite, has a length <= 0 (CDVAE ``non_positive_lattice``) or
        angles that admit no cell (zero or non-finite volume) is ``None``.

        Args:
          state: ``{"frac": [B, N, 3], "types": [B, N, K] or [B, N], "lattice": [B, 6]}``.
          ctx: context with ``num_atoms`` [B] (or ``node_mask`` [B, N]).

        Returns:
          B pymatgen structures, ``None`` where decoding failed.
        """
        frac = wrap_frac(np.asarray(state["frac"], np.float64))
        lat = np.asarray(state["lattice"], np.float64)
        z = self.atomic_numbers(state)
        if ctx.get("num_atoms") is not None:
            counts = np.asarray(ctx["num_atoms"]).astype(np.int64)
        else:
            counts = np.rint(np.asarray(ctx["node_mask"]).sum(-1)).astype(np.int64)
        out: list[Structure | None] = []
        for i in range(frac.shape[0]):
            p = lat[i]
            if not np.all(np.isfinite(p)) or np.any(p[:3] <= 0) or counts[i] < 1:
                out.append(None)
                continue
            latt = Lattice.from_parameters(*p.tolist())
            vol = latt.volume
            if not np.isfinite(vol) or vol <= 0 or not np.all(np.isfinite(latt.matrix)):
                out.append(None)
                continue
            n = counts[i]
            out.append(Structure(latt, z[i, :n].tolist(), frac[i, :n], coords_are_cartesian=False))
        return out

    def constrain(self, state: State, ctx: Context) -> State:
        """Wrap fractional coordinates into [0, 1) and zero the padding; jit-compatible.

        Args:
          state: ``{"frac", "types", "lattice"}`` (other leaves pass through).
          ctx: context with ``masks`` (from :meth:`encode` or :meth:`context`).

        Returns:
          The constrained state (same keys, shapes, dtypes).
        """
        out = dict(state)
        if "frac" in out:
            out["frac"] = wrap_frac(out["frac"])
        return apply_masks(out, ctx)


# ---------------------------------------------------------------------------- file formats

_DATA_LINE = re.compile(r"^[ \t]*data_", flags=re.MULTILINE)


def write_cif(structures: Iterable[Structure | None], path: str | Path) -> Path:
    """Write structures to one CIF file with one ``data_`` block each (pymatgen ``CifWriter``).

    Blocks are named ``data_<i>_<reduced formula>`` so names stay unique (pymatgen's
    reader would otherwise let equal names overwrite each other). ``None`` (a failed
    sample) becomes an empty block ``data_<i>_failed``, so :func:`read_cif` with
    ``keep_failed=True`` returns the samples in their original positions.

    Args:
      structures: structures, or ``None`` for failures.
      path: output file.

    Returns:
      ``path`` as a ``Path``.
    """
    parts = []
    for i, s in enumerate(structures):
        if s is None:
            parts.append(f"data_{i}_failed\n")
            continue
        text = str(CifWriter(s))
        name = f"data_{i}_{s.composition.reduced_formula}"
        text, nsub = _DATA_LINE.subn(name, text, count=1)
        if nsub != 1:
            raise RuntimeError("pymatgen CifWriter wrote no data_ line")
        parts.append(text.rstrip("\n") + "\n")
    path = Path(path)
    path.write_text("\n".join(parts))
    return path


def _split_blocks(text: str) -> list[str]:
    starts = [m.start() for m in _DATA_LINE.finditer(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def read_cif(
    path: str | Path, *, keep_failed: bool = False, primitive: bool = False
) -> list[Structure | None]:
    """Read every ``data_`` block of a CIF file (any CIF; symmetry operations are applied).

    Blocks that do not parse into an ordered structure are skipped (or ``None`` with
    ``keep_failed``) and counted in one warning that names them.

    Args:
      path: CIF file.
      keep_failed: return ``None`` at the position of a bad block instead of dropping it.
      primitive: return primitive cells (pymatgen ``parse_structures(primitive=...)``).

    Returns:
      One structure per good block, in file order.

    Raises:
      MissingFileError: no such file.
      DataError: an empty or binary file, no ``data_`` block, or blocks of which none
        parses (write_cif's empty placeholders for failed samples aside).
    """
    text = read_text(path, "CIF text with a data_ block per crystal")
    blocks = _split_blocks(text)
    if not blocks:
        raise DataError(
            f"{path} has no data_ block, so no crystal; expected CIF text with a data_ block "
            "per crystal; is it a sample file of this recipe?"
        )
    out: list[Structure | None] = []
    bad: list[str] = []
    errors: list[str] = []  # blocks that failed to parse (not placeholders)
    for k, block in enumerate(blocks):
        name, _, body = block.strip().partition("\n")
        if not [ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]:
            # write_cif's placeholder for a failed sample
            bad.append(f"block {k} ({name}): empty block (a failed sample)")
            if keep_failed:
                out.append(None)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = CifParser.from_str(block).parse_structures(
                    primitive=primitive, on_error="raise"
                )
            if len(parsed) != 1 or len(parsed[0]) == 0:
                raise ValueError("no structure in block")
            out.append(parsed[0])
        except Exception as e:  # pymatgen raises many types on malformed CIF
            bad.append(f"block {k} ({name}): {type(e).__name__}: {str(e)[:80]}")
            errors.append(bad[-1])
            if keep_failed:
                out.append(None)
    if errors and all(s is None for s in out):
        first = " ".join(errors[0].split())  # pymatgen's messages may span lines
        raise DataError(f"no data_ block of {path} is a crystal ({first}); is it a CIF file?")
    if bad:
        shown = "; ".join(bad[:10]) + (" ..." if len(bad) > 10 else "")
        warnings.warn(f"{path}: skipped {len(bad)} unreadable CIF block(s): {shown}", stacklevel=2)
    return out


def write_extxyz(structures: Iterable[Structure | None], path: str | Path) -> Path:
    """Write structures as extended XYZ frames (lattice, species, Cartesian positions).

    ``None`` entries cannot be represented and are skipped with a warning that counts them.

    Args:
      structures: structures, or ``None`` for failures.
      path: output file.

    Returns:
      ``path`` as a ``Path``.
    """
    lines = []
    skipped = 0
    for s in structures:
        if s is None:
            skipped += 1
            continue
        lat = " ".join(f"{x:.10f}" for x in np.asarray(s.lattice.matrix).ravel())
        lines.append(str(len(s)))
        lines.append(f'Lattice="{lat}" Properties=species:S:1:pos:R:3 pbc="T T T"')
        for site in s:
            x, y, zc = site.coords
            lines.append(f"{site.specie.symbol} {x:.10f} {y:.10f} {zc:.10f}")
    if skipped:
        warnings.warn(f"write_extxyz: skipped {skipped} failed sample(s) (None)", stacklevel=2)
    path = Path(path)
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


# ----------------------------------------------------------------------------- compositions


def as_composition(obj: Composition | Structure | str) -> Composition:
    """A composition with whole, positive atom counts of real elements.

    Args:
      obj: a composition, a structure (its sites) or a formula string.

    Returns:
      The :class:`~pymatgen.core.Composition` (element amounts, oxidation states dropped).

    Raises:
      ValueError: an unparsable formula, no atoms, a non-integer count, or a symbol that
        is no element (pymatgen reads ``Xx`` as a dummy species).
    """
    if isinstance(obj, Structure):
        obj = obj.composition
    comp = (Composition(obj) if isinstance(obj, str) else obj).element_composition
    if len(comp) == 0 or comp.num_atoms <= 0:
        raise ValueError(f"empty composition {str(obj)!r}")
    for el, amt in comp.items():
        if not isinstance(el, Element):
            raise ValueError(f"{el} is not a chemical element")
        if amt <= 0 or abs(amt - round(amt)) > 1e-6:
            raise ValueError(f"{el} has a non-integer or non-positive count {amt}")
    return comp


def write_compositions(comps: Iterable[Composition | Structure | str], path: str | Path) -> Path:
    """One composition per line as ``Composition.formula`` (``Ca1 Ti1 O3``)."""
    path = Path(path)
    path.write_text("".join(as_composition(c).formula + "\n" for c in comps))
    return path


def read_compositions(path: str | Path) -> list[Composition]:
    """The compositions of a file written by :func:`write_compositions`.

    Raises:
      MissingFileError: no such file.
      DataError: an empty or binary file, or a line that is empty or not a whole-number
        composition of elements; the message names the file and the line number.
    """
    out = []
    want = "one composition a line, e.g. 'Ca1 Ti1 O3'"
    for i, line in enumerate(read_text(path, want).splitlines(), start=1):
        text = line.strip()
        if not text:
            raise DataError(f"{path}:{i}: empty line; expected {want}")
        try:
            out.append(as_composition(text))
        except Exception as e:  # pymatgen raises ValueError and others on a bad formula
            why = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
            hint = "; is it a sample file of this recipe?" if not out else ""
            raise DataError(
                f"{path}:{i}: cannot read composition {text[:40]!r} ({why}); expected {want}{hint}"
            ) from e
    return out
