"""Molecules as dense padded graphs: the GDSS molecule adapter (QM9, ZINC250k, MOSES).

A molecule with hydrogens left implicit becomes (Jo, Lee, Hwang, *Score-based Generative
Modeling of Graphs via the System of SDEs*, ICML 2022, Sec. 4.2 and App. C.2):

- ``x`` [B, N, F]: one-hot atom type over the vocabulary, ``F = len(atoms)``. The
  no-atom ("virtual node") class of GDSS has **no channel of its own in the state**: a
  padded or absent atom is an all-zero row. This is GDSS's exact layout: its loader
  builds a one-hot with ``len(atoms) + 1`` classes, the last for the virtual node, and
  then drops that last column (``x[:, :-1]`` in ``utils/data_loader_mol.py``), so
  ``max_feat_num`` is 4 for QM9 (C, N, O, F) and 9 for ZINC250k. At decoding, GDSS
  thresholds ``x > 0.5``, appends the virtual class as ``1 - sum`` and takes the argmax
  (``sampler.py``): the atom is the *first* channel above 0.5, and a row with no channel
  above 0.5 is no atom. :func:`quantize_atoms` does exactly that.
- ``adj`` [B, N, N]: bond orders 1 (single), 2 (double), 3 (triple), 0 for no bond, of
  the Kekule structure, symmetric with a zero diagonal (GDSS ``adj`` after its channel
  remapping "0, 1, 2, 3 -> 1, 2, 3, 0"). Generated values are rounded into {0, 1, 2, 3}
  at the thresholds 0.5 / 1.5 / 2.5 (GDSS ``quantize_mol``): :func:`quantize_bonds`.
- atom order: that of RDKit's canonical non-isomeric SMILES, re-parsed and kekulized,
  as the GDSS/MoFlow preprocessor does (``GGNNPreprocessor.prepare_smiles_and_mol``
  with ``kekulize=True``).

What the encoding drops, as GDSS does: formal charges, stereochemistry, isotopes and
explicit hydrogens. A charged input therefore does not round-trip: QM9's zwitterion
``[NH3+]CC([O-])=O`` (gdb_80, 0-based data row 79, line 81 of the csv) is encoded as
the graph of glycine and decodes to the neutral ``NCC(=O)O``; nitromethane
``C[N+](=O)[O-]`` decodes to ``C[N+](=O)O`` (the N+ comes back through the charge rule
below, the O- becomes OH).

Decoding (GDSS ``utils/mol_utils.py``), in :func:`construct_mol`, :func:`correct_mol`,
:func:`largest_fragment` and :func:`graph_to_mol`:

1. atoms of the non-virtual classes are added in node order; bonds are added for the
   node pairs ``i > j`` (the lower triangle, row by row) with the quantized order.
2. Charge rule: after each bond, RDKit's valence check (``SanitizeMol`` with
   ``SANITIZE_PROPERTIES``) runs on the whole molecule; if it fails, the *first*
   offending atom (RDKit checks atoms in index order) gets formal charge +1 when it is
   N, O or S and its explicit valence is exactly one above its default valence (so a
   nitrogen with four bonds becomes N+, an oxygen with three becomes O+). With RDKit's
   valence tables sulfur is allowed valences 2, 4 and 6, so it never fails with three
   bonds and the S+ branch of GDSS never fires; we keep the rule as GDSS states it.
3. Valency correction: while the valence check fails, the highest-order bond of the
   first offending atom (ties: RDKit's bond order of that atom) is removed and re-added
   one order lower (a single bond is deleted).
4. The molecule is written as isomeric SMILES; if it has several fragments the one with
   the *longest SMILES string* is kept (GDSS ``valid_mol_can_with_seg``), and that SMILES
   is parsed (and so fully sanitized) again; a parse failure is an invalid molecule.

Without correction, a molecule is valid when the graph built by steps 1-2 passes full
RDKit sanitization (all fragments kept). GDSS counts the molecules that pass the
step-2 valence check (``SANITIZE_PROPERTIES``) instead; for Kekule input with no aromatic
bonds the two checks accept the same molecules, since the remaining sanitization steps
(kekulization, aromaticity perception) cannot fail on them.

Two deliberate differences from GDSS, both on degenerate samples: a sample with no atom
decodes to ``None`` (GDSS keeps an empty molecule, counts it as valid without correction
and then drops its empty SMILES), and a non-finite adjacency entry counts as no bond
(GDSS casts NaN to an arbitrary integer).

Sample files: :func:`write_smiles` / :func:`read_smiles`, one SMILES a line, an empty
line where decoding failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from rdkit import Chem
from rdkit.rdBase import BlockLogs

from genmodels.core.masks import apply_masks, graph_masks
from genmodels.core.types import Array, Context, State
from genmodels.domains.files import read_text
from genmodels.domains.graphs import count_sampler, symmetrize_upper
from genmodels.errors import DataError

__all__ = [
    "MOSES_ATOMS",
    "QM9_ATOMS",
    "ZINC_ATOMS",
    "MoleculeDomain",
    "construct_mol",
    "correct_mol",
    "graph_to_mol",
    "largest_fragment",
    "mol_to_graph",
    "mol_to_smiles",
    "quantize_atoms",
    "quantize_bonds",
    "check_smiles",
    "read_smiles",
    "write_smiles",
]

#: QM9 heavy atoms (GDSS ``atomic_num_list`` [6, 7, 8, 9]); at most 9 atoms.
QM9_ATOMS: tuple[str, ...] = ("C", "N", "O", "F")
#: ZINC250k heavy atoms (GDSS [6, 7, 8, 9, 15, 16, 17, 35, 53]); at most 38 atoms.
ZINC_ATOMS: tuple[str, ...] = ("C", "N", "O", "F", "P", "S", "Cl", "Br", "I")
#: Heavy atoms of the MOSES sets (its filters allow C, N, S, O, F, Cl, Br and H), ordered
#: by atomic number.
MOSES_ATOMS: tuple[str, ...] = ("C", "N", "O", "F", "S", "Cl", "Br")

_BOND_TYPES = {
    1: Chem.BondType.SINGLE,
    2: Chem.BondType.DOUBLE,
    3: Chem.BondType.TRIPLE,
}
_BOND_ORDERS = {bt: k for k, bt in _BOND_TYPES.items()}
# Elements that GDSS's charge rule may turn into cations: N, O, S.
_CHARGEABLE = (7, 8, 16)


# ------------------------------------------------------------------ encoding


def _as_mol(obj: str | Chem.Mol) -> Chem.Mol | None:
    if isinstance(obj, Chem.Mol):
        return obj
    if not isinstance(obj, str) or not obj.strip():
        return None
    with BlockLogs():
        return Chem.MolFromSmiles(obj)


def mol_to_graph(mol: str | Chem.Mol, atoms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Atom classes and Kekule bond orders of a molecule, in GDSS/MoFlow atom order.

    The molecule is written as canonical non-isomeric SMILES, parsed again and kekulized
    (``GGNNPreprocessor.prepare_smiles_and_mol``); atoms follow that SMILES. Hydrogens stay
    implicit; charges, stereo and isotopes are dropped.

    Args:
      mol: a SMILES string or an RDKit molecule.
      atoms: the vocabulary of element symbols (e.g. :data:`QM9_ATOMS`).

    Returns:
      ``(types, bonds)``: [n] int64 class indices into ``atoms`` and [n, n] int64 bond
      orders in {0, 1, 2, 3}, symmetric with a zero diagonal.

    Raises:
      ValueError: unparsable SMILES, an element outside ``atoms``, or a bond that is not
        single/double/triple after kekulization.
    """
    m = _as_mol(mol)
    if m is None:
        raise ValueError(f"invalid SMILES {mol!r}")
    with BlockLogs():
        can = Chem.MolToSmiles(m, isomericSmiles=False, canonical=True)
        m = Chem.MolFromSmiles(can)
        if m is None:
            raise ValueError(f"RDKit cannot parse its own canonical SMILES {can!r}")
        Chem.Kekulize(m)
    index = {s: i for i, s in enumerate(atoms)}
    types = np.empty(m.GetNumAtoms(), np.int64)
    for a in m.GetAtoms():
        sym = a.GetSymbol()
        if sym not in index:
            raise ValueError(f"{can}: element {sym} is not in the vocabulary {tuple(atoms)}")
        types[a.GetIdx()] = index[sym]
    n = len(types)
    bonds = np.zeros((n, n), np.int64)
    for b in m.GetBonds():
        order = _BOND_ORDERS.get(b.GetBondType())
        if order is None:
            raise ValueError(f"{can}: bond type {b.GetBondType()} is not single/double/triple")
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        bonds[i, j] = bonds[j, i] = order
    return types, bonds


# ------------------------------------------------------------------ decoding


def quantize_atoms(x, thr: float = 0.5) -> np.ndarray:
    """Atom classes of (generated) features, as GDSS: first channel above ``thr``, else none.

    Args:
      x: [..., N, F] features.
      thr: threshold (GDSS uses 0.5).

    Returns:
      [..., N] int64 class indices, -1 where no channel exceeds ``thr`` (no atom).
    """
    hot = np.asarray(x, dtype=np.float64) > thr  # NaN compares False: no atom
    return np.where(hot.any(-1), hot.argmax(-1), -1).astype(np.int64)


def quantize_bonds(adj) -> np.ndarray:
    """Round bond values into {0, 1, 2, 3} at 0.5 / 1.5 / 2.5 (GDSS ``quantize_mol``).

    Args:
      adj: [..., N, N] (generated) bond values.

    Returns:
      [..., N, N] int64 bond orders; non-finite entries become 0.
    """
    a = np.asarray(adj, dtype=np.float64)
    a = np.where(np.isfinite(a), a, 0.0)
    return (a >= 0.5).astype(np.int64) + (a >= 1.5) + (a >= 2.5)


def _valence_problem(mol: Chem.Mol) -> tuple[int, int] | None:
    """First atom whose explicit valence RDKit rejects, with that valence, or ``None``.

    Runs ``SanitizeMol(SANITIZE_PROPERTIES)`` as GDSS ``check_valency`` (which also
    refreshes the property cache the SMILES writer needs).
    """
    try:
        with BlockLogs():
            Chem.SanitizeMol(mol, sanitizeOps=Chem.SanitizeFlags.SANITIZE_PROPERTIES)
        return None
    except Chem.AtomValenceException as e:
        cause = getattr(e, "cause", None)
        if cause is not None:
            idx = cause.GetAtomIdx()
        else:  # older RDKit: ask for the list of problems (atom order) instead
            with BlockLogs():
                probs = [
                    p
                    for p in Chem.DetectChemistryProblems(mol)
                    if p.GetType() == "AtomValenceException"
                ]
            idx = probs[0].GetAtomIdx()
    atom = mol.GetAtomWithIdx(idx)
    valence = int(round(sum(b.GetBondTypeAsDouble() for b in atom.GetBonds())))
    return idx, valence + atom.GetNumExplicitHs()


def construct_mol(types: np.ndarray, bonds: np.ndarray, atoms: Sequence[str]) -> Chem.RWMol:
    """Build an RDKit molecule from atom classes and bond orders, with GDSS's charge rule.

    Step 1-2 of the module docstring (GDSS ``construct_mol``): nodes with class -1 are
    dropped; bonds are read from the lower triangle (``i > j``) row by row; after each
    bond, if RDKit's valence check fails, the first offending atom becomes a cation when
    it is N, O or S with a valence exactly one above its default valence.

    Args:
      types: [N] atom classes, -1 for no atom.
      bonds: [N, N] bond orders in {0, 1, 2, 3} (only ``i > j`` is read).
      atoms: the vocabulary.

    Returns:
      An unsanitized ``Chem.RWMol`` (possibly with valence errors left for
      :func:`correct_mol`).
    """
    types = np.asarray(types)
    bonds = np.asarray(bonds)
    keep = np.flatnonzero(types >= 0)
    ptable = Chem.GetPeriodicTable()
    mol = Chem.RWMol()
    for t in types[keep]:
        mol.AddAtom(Chem.Atom(atoms[int(t)]))
    sub = bonds[np.ix_(keep, keep)]
    for i in range(len(keep)):
        for j in range(i):
            order = int(sub[i, j])
            if order == 0:
                continue
            mol.AddBond(i, j, _BOND_TYPES[order])
            problem = _valence_problem(mol)
            if problem is None:
                continue
            idx, valence = problem
            atom = mol.GetAtomWithIdx(idx)
            z = atom.GetAtomicNum()
            if z in _CHARGEABLE and valence - ptable.GetDefaultValence(z) == 1:
                atom.SetFormalCharge(1)
    return mol


def correct_mol(mol: Chem.RWMol) -> tuple[Chem.RWMol, bool]:
    """Lower bond orders until RDKit accepts every valence (GDSS ``correct_mol``).

    While the valence check fails, the bond of highest order at the first offending atom
    (the first such bond in the atom's bond list on ties) is removed and, unless it was
    single, added back one order lower. Each pass lowers the total bond order, so the loop
    ends. Works in place.

    Args:
      mol: output of :func:`construct_mol`.

    Returns:
      ``(mol, was_valid)``: the corrected molecule and whether it needed no correction.
    """
    was_valid = _valence_problem(mol) is None
    while (problem := _valence_problem(mol)) is not None:
        idx, _ = problem
        cands = [
            (int(b.GetBondType()), b.GetBeginAtomIdx(), b.GetEndAtomIdx())
            for b in mol.GetAtomWithIdx(idx).GetBonds()
        ]
        if not cands:  # cannot happen for a valence error; guard against an endless loop
            break
        # stable sort: among equal orders the first bond in RDKit's list is lowered
        order, i, j = sorted(cands, key=lambda c: c[0], reverse=True)[0]
        mol.RemoveBond(i, j)
        if order - 1 >= 1:
            mol.AddBond(i, j, _BOND_TYPES[order - 1])
    return mol, was_valid


def largest_fragment(mol: Chem.Mol | None) -> Chem.Mol | None:
    """Keep the fragment with the longest SMILES and re-parse it (GDSS ``valid_mol_can_with_seg``).

    Args:
      mol: a molecule (sanitized or with a fresh property cache) or ``None``.

    Returns:
      The sanitized molecule of the kept fragment, or ``None`` when ``mol`` is ``None``,
      has no atom, or its SMILES does not parse.
    """
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    with BlockLogs():
        try:
            smi = Chem.MolToSmiles(mol, isomericSmiles=True)
        except Exception:  # noqa: BLE001 - RDKit raises several types on broken molecules
            return None
        if "." in smi:
            # stable sort: among equally long fragments the first one written wins
            smi = sorted(smi.split("."), key=len, reverse=True)[0]
        return Chem.MolFromSmiles(smi)


def _sanitized_copy(mol: Chem.Mol) -> Chem.Mol | None:
    if mol.GetNumAtoms() == 0:
        return None
    m = Chem.Mol(mol)
    try:
        with BlockLogs():
            Chem.SanitizeMol(m)
    except Exception:  # noqa: BLE001 - any sanitization failure means invalid
        return None
    return m


def graph_to_mol(
    types: np.ndarray, bonds: np.ndarray, atoms: Sequence[str], correction: bool = True
) -> Chem.Mol | None:
    """Decode one quantized graph into a molecule (GDSS ``gen_mol`` for one sample).

    Args:
      types: [N] atom classes, -1 for no atom (see :func:`quantize_atoms`).
      bonds: [N, N] bond orders in {0, 1, 2, 3} (see :func:`quantize_bonds`).
      atoms: the vocabulary.
      correction: apply the valency correction and keep the largest fragment (GDSS);
        ``False`` returns the molecule built with the charge rule only, all fragments
        kept, if RDKit sanitizes it.

    Returns:
      A sanitized ``Chem.Mol`` or ``None`` (no atom, or invalid).
    """
    mol = construct_mol(types, bonds, atoms)
    if not correction:
        return _sanitized_copy(mol)
    mol, _ = correct_mol(mol)
    return largest_fragment(mol)


def mol_to_smiles(mol: Chem.Mol | None) -> str:
    """Canonical (isomeric) SMILES of a molecule, ``""`` for ``None`` or a failure."""
    if mol is None or mol.GetNumAtoms() == 0:
        return ""
    try:
        with BlockLogs():
            return Chem.MolToSmiles(mol)
    except Exception:  # noqa: BLE001
        return ""


# ------------------------------------------------------------------ the adapter


@dataclass(frozen=True)
class MoleculeDomain:
    """Adapter between molecules and the padded GDSS state ``{"x", "adj"}``.

    Args:
      atoms: element symbols, one feature channel each (:data:`QM9_ATOMS`,
        :data:`ZINC_ATOMS`, :data:`MOSES_ATOMS`).
      max_atoms: padded node count N (GDSS ``max_node_num``: QM9 9, ZINC250k 38).
    """

    atoms: tuple[str, ...]
    max_atoms: int

    def __post_init__(self):
        ptable = Chem.GetPeriodicTable()
        for s in self.atoms:
            try:
                ok = ptable.GetAtomicNumber(s) > 0
            except RuntimeError:
                ok = False
            if not ok:
                raise ValueError(f"{s!r} is not an element symbol")
        if len(set(self.atoms)) != len(self.atoms):
            raise ValueError(f"repeated element in {self.atoms}")
        if self.max_atoms < 1:
            raise ValueError(f"max_atoms must be >= 1, got {self.max_atoms}")

    @property
    def num_atom_types(self) -> int:
        """F, the number of feature channels (GDSS ``max_feat_num``)."""
        return len(self.atoms)

    def graphs(self, mols: Sequence[str | Chem.Mol]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Padded numpy arrays of a list of molecules.

        Args:
          mols: SMILES strings or RDKit molecules, each with 1..max_atoms heavy atoms.

        Returns:
          ``(types, bonds, node_mask)``: [B, N] int8 atom classes (-1 on padding),
          [B, N, N] int8 bond orders, [B, N] float32 node mask.

        Raises:
          ValueError: an empty list, or a molecule that is invalid, empty, too large or
            has an element outside the vocabulary (the message gives its index).
        """
        if len(mols) == 0:
            raise ValueError("no molecules to encode (empty list)")
        n = self.max_atoms
        types = np.full((len(mols), n), -1, np.int8)
        bonds = np.zeros((len(mols), n, n), np.int8)
        for k, m in enumerate(mols):
            try:
                t, b = mol_to_graph(m, self.atoms)
            except ValueError as e:
                raise ValueError(f"molecule {k}: {e}") from e
            if len(t) == 0 or len(t) > n:
                raise ValueError(f"molecule {k} has {len(t)} heavy atoms, need 1..{n}")
            types[k, : len(t)] = t
            bonds[k, : len(t), : len(t)] = b
        return types, bonds, (types >= 0).astype(np.float32)

    def arrays_to_state(
        self, types: np.ndarray, bonds: np.ndarray
    ) -> tuple[State, dict[str, Array]]:
        """State and context from padded class/bond arrays (as :meth:`graphs` returns).

        Args:
          types: [B, N] atom classes, -1 on padding.
          bonds: [B, N, N] bond orders.

        Returns:
          ``(state, ctx)`` as :meth:`encode`.
        """
        types = np.asarray(types)
        node_mask = (types >= 0).astype(np.float32)  # [B, N]
        x = np.eye(self.num_atom_types, dtype=np.float32)[np.maximum(types, 0)]  # [B, N, F]
        x *= node_mask[..., None]
        mask = jnp.asarray(node_mask)
        state = {"x": jnp.asarray(x), "adj": jnp.asarray(np.asarray(bonds, np.float32))}
        return state, {"node_mask": mask, "masks": graph_masks(mask)}

    def encode(self, mols: Sequence[str | Chem.Mol]) -> tuple[State, dict[str, Array]]:
        """Pad a list of molecules into a batch.

        Args:
          mols: SMILES strings or RDKit molecules with 1..max_atoms heavy atoms, every
            element in ``atoms``.

        Returns:
          ``(state, ctx)``: state ``{"x": [B, N, F] one-hot atom types (all-zero rows for
          padding), "adj": [B, N, N] Kekule bond orders 0..3}`` float32; ctx
          ``{"node_mask": [B, N], "masks": graph_masks(node_mask)}``.

        Raises:
          ValueError: see :meth:`graphs`.
        """
        types, bonds, _ = self.graphs(mols)
        return self.arrays_to_state(types, bonds)

    def _quantized(self, state: State, ctx: Context | None) -> tuple[np.ndarray, np.ndarray]:
        types = quantize_atoms(state["x"])  # [B, N]
        bonds = quantize_bonds(state["adj"])  # [B, N, N]
        if ctx is not None and ctx.get("node_mask") is not None:
            types = np.where(np.asarray(ctx["node_mask"]) > 0, types, -1)
        return types, bonds

    def decode(
        self, state: State, ctx: Context | None = None, correction: bool = True
    ) -> list[Chem.Mol | None]:
        """Turn a (generated) batch into molecules, as GDSS does (see the module docstring).

        Args:
          state: ``{"x": [B, N, F], "adj": [B, N, N]}``.
          ctx: context with ``node_mask`` (padding is no atom) or ``None``.
          correction: GDSS valency correction + largest fragment; ``False`` gives the raw
            molecules used for validity without correction.

        Returns:
          B sanitized ``Chem.Mol`` or ``None`` (invalid, or no atom).
        """
        types, bonds = self._quantized(state, ctx)
        return [graph_to_mol(t, b, self.atoms, correction) for t, b in zip(types, bonds)]

    def decode_smiles(
        self, state: State, ctx: Context | None = None
    ) -> tuple[list[str], list[str]]:
        """Canonical SMILES with and without correction (``""`` where decoding failed).

        Args:
          state: ``{"x": [B, N, F], "adj": [B, N, N]}``.
          ctx: context with ``node_mask`` or ``None``.

        Returns:
          ``(smiles, raw_smiles)``: corrected (GDSS) and uncorrected, B entries each.
        """
        types, bonds = self._quantized(state, ctx)
        out, raw = [], []
        for t, b in zip(types, bonds):
            raw.append(mol_to_smiles(graph_to_mol(t, b, self.atoms, correction=False)))
            out.append(mol_to_smiles(graph_to_mol(t, b, self.atoms, correction=True)))
        return out, raw

    def constrain(self, state: State, ctx: Context) -> State:
        """Project onto valid padded states; jit-compatible.

        ``adj`` keeps its strict upper triangle mirrored (symmetric, zero diagonal; as
        :class:`genmodels.domains.graphs.GraphDomain`), then every leaf with a mask in
        ``ctx["masks"]`` is zeroed on padding. Other leaves pass through.

        Args:
          state: ``{"x": [B, N, F], "adj": [B, N, N]}``.
          ctx: context, normally with ``masks``.

        Returns:
          The constrained state.
        """
        out = dict(state)
        if "adj" in out:
            out["adj"] = symmetrize_upper(out["adj"])
        return apply_masks(out, ctx)

    def node_count_sampler(self, counts: Iterable[int]) -> Callable[[Array, int], dict[str, Array]]:
        """Sampler of contexts whose atom counts follow the training set (GDSS ``init_flags``).

        GDSS derives node flags from non-zero adjacency rows, so its single-atom molecules
        (QM9's methane, ammonia, water) count as zero atoms there; here every atom counts.

        Args:
          counts: heavy-atom counts of the training molecules, each in 1..max_atoms.

        Returns:
          ``sample(key, batch_size) -> {"node_mask": [B, N], "masks": ...}``, pure and
          jit-compatible with ``batch_size`` static.

        Raises:
          ValueError: no counts or a count outside 1..max_atoms.
        """
        return count_sampler(counts, self.max_atoms)


# ------------------------------------------------------------------ files


def write_smiles(smiles: Iterable[str | None], path: str | Path) -> Path:
    """Write one SMILES a line; ``None`` or ``""`` (a failed sample) is an empty line.

    Raises:
      ValueError: a SMILES containing a line break.
    """
    lines = []
    for i, s in enumerate(smiles):
        s = s or ""
        if "\n" in s or "\r" in s:
            raise ValueError(f"SMILES {i} contains a line break")
        lines.append(s + "\n")
    path = Path(path)
    path.write_text("".join(lines))
    return path


def read_smiles(path: str | Path) -> list[str]:
    """Read a ``.smi`` file written by :func:`write_smiles`.

    Also reads ``.smi`` files from other tools: only the first whitespace-separated field
    of a line is kept (they may carry a name after the SMILES), and a first line whose
    first field is ``smiles`` (any case) is a header and skipped. Empty lines give ``""``
    (a failed sample); a trailing newline adds no entry.

    Args:
      path: the file.

    Returns:
      One SMILES a line, ``""`` for a failed sample.

    Raises:
      MissingFileError: no such file.
      DataError: an empty or binary file, or one whose lines are no SMILES at all
        (:func:`check_smiles`).
    """
    text = read_text(path, "one SMILES a line")
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    out = [(ln.split()[0] if ln.strip() else "") for ln in lines]
    header = bool(out) and out[0].lower() == "smiles"
    return check_smiles(out[header:], path, first=1 + header)


def check_smiles(
    smiles: Sequence[str], path: str | Path, *, first: int = 1, unit: str = "line"
) -> list[str]:
    """The entries of a SMILES file, refused when no entry is a SMILES string at all.

    Only the syntax is checked (RDKit without sanitization), so a file of chemically
    invalid samples passes (they count as invalid molecules) while a file of another
    kind (graph6 lines, formulas) is refused instead of scoring validity 0.

    Args:
      smiles: the entries, ``""`` for a failed sample.
      path: the file, for the message.
      first: the line (or row) number of entry 0.
      unit: ``"line"`` or ``"row"``.

    Returns:
      ``smiles`` as a list.

    Raises:
      DataError: no entries ("holds no samples"), or entries of which none parses; the
        message quotes the first one.
    """
    smiles = list(smiles)
    if not smiles:
        raise DataError(f"{path} holds no samples (no SMILES after the header line)")
    filled = [(i, s) for i, s in enumerate(smiles, start=first) if s]
    with BlockLogs():
        if filled and all(Chem.MolFromSmiles(s, sanitize=False) is None for _, s in filled):
            i, s = filled[0]
            raise DataError(
                f"no {unit} of {path} is a SMILES string ({unit} {i}: {s[:40]!r}); "
                "is it a sample file of this recipe?"
            )
    return smiles
