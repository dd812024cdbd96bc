"""Molecule generation metrics, defined as the GDSS evaluation computes them.

GDSS (``sampler.py::Sampler_mol``) decodes its samples with valency correction, keeps the
non-empty SMILES and calls MOSES ``get_all_metrics(gen, k=len(gen), test=test,
train=train)`` with canonicalized train/test SMILES, then NSPDK MMD against the test
molecules. The definitions below follow MOSES (Polykovskiy et al., *Molecular Sets
(MOSES)*, Front. Pharmacol. 2020; ``moses/metrics/metrics.py`` and ``utils.py``):

- **validity**: fraction of *all* samples whose SMILES is non-empty and parses with RDKit
  (MOSES ``fraction_valid``; a failed decode is ``""`` and counts as invalid).
- **validity without correction**: the same fraction for the SMILES decoded without
  valency correction (:meth:`MoleculeDomain.decode_smiles` gives both lists). GDSS
  reports ``num_no_correct / num_mols``, the fraction that pass RDKit's valence check
  before correction; see :mod:`genmodels.domains.molecules` for why the two agree. The
  raw graph is built with GDSS's charge rule (N, O, S one bond over their valence become
  cations), so this is what PARD calls *relaxed* validity
  (``pard/analysis/rdkit_functions.py::compute_relaxed_validity``).
- **plain validity without correction** (on request): PARD's plain validity
  (``compute_validity``: the graph sanitized with no charge allowed): the fraction of raw
  SMILES that parse and carry no formal charge. The charge rule fires only on an atom
  whose valence RDKit rejects, so a sample is plain-valid exactly when it is
  relaxed-valid with no charged atom.
- **uniqueness**: distinct canonical SMILES among the valid samples divided by the number
  of valid samples (MOSES ``fraction_unique`` with ``k = number of valid samples``, as
  GDSS calls it).
- **novelty**: among the *distinct* valid canonical SMILES, the fraction absent from the
  canonical training SMILES (MOSES ``novelty``: ``|set(gen) - set(train)| / |set(gen)|``;
  the denominator is the number of unique valid molecules, not of valid ones). GDSS
  canonicalizes the training SMILES first, and so does :func:`novelty` unless told they
  already are.
- **FCD**: Frechet ChemNet Distance (Preuer et al. 2018) between the valid samples and the
  reference (GDSS: the test SMILES), with both sets written as RDKit canonical SMILES
  first (MOSES' ``fcd_torch`` does so; the ``fcd`` package used here does not, so we do
  it). ChemNet weights ship with ``fcd`` 1.2.2; nothing is downloaded. Needs torch.
- **NSPDK MMD**: :func:`genmodels.metrics.nspdk.nspdk_mmd` between the test molecules and
  the valid samples as graphs with atom-symbol node labels and bond-order edge labels
  (``int(GetBondTypeAsDouble())``, so an aromatic bond is 1), GDSS ``mols_to_nx``; both
  sets are parsed from SMILES, hence aromatic.
- MOSES-style **SNN** (mean over samples of the largest Tanimoto similarity to the
  reference, Morgan radius 2, 1024 bits), **Frag** and **Scaf** (cosine similarity of
  BRICS-fragment and Bemis-Murcko-scaffold counts; scaffolds with fewer than 2 rings are
  ignored) and **IntDiv** (``1 - mean_i (mean_j T_ij^p)^(1/p)`` over all ordered pairs of
  samples, self pairs included). All are computed on the valid samples, duplicates kept.
- MOSES **Filters**: the fraction of valid samples that pass the filters MOSES built its
  data set with (``mol_passes_filters``): no ring of 8 or more atoms, no charged atom, only
  C, N, S, O, F, Cl, Br, H, and no match (on the molecule with explicit hydrogens) of a
  medicinal-chemistry filter (MOSES ``mcf.csv``, 22 SMARTS, listed in :data:`MOSES_MCF`)
  or of a PAINS alert. The PAINS alerts come from RDKit's ``FilterCatalog`` (PAINS A, B and
  C: 480 SMARTS, the same WEHI conversion of Baell & Holloway 2010 that MOSES ships); on
  10,000 QM9 and 5,000 MOSES test molecules the two tables flag the same 74 molecules.

An empty valid set gives uniqueness and novelty 0 and FCD/NSPDK/SNN/... NaN.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import cache

import networkx as nx
import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem, rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold
from rdkit.rdBase import BlockLogs
from tqdm.auto import tqdm

from genmodels.metrics.cache import cached_arrays, content_digest
from genmodels.metrics.frechet import frechet_distance
from genmodels.metrics.nspdk import nspdk_mean_embedding, nspdk_mmd

__all__ = [
    "canonical_smiles",
    "fcd",
    "fcd_statistics",
    "filters",
    "fingerprints",
    "fragment_counts",
    "fragment_similarity",
    "frechet_distance",
    "internal_diversity",
    "molecule_metrics",
    "mols_to_nx",
    "MOSES_MCF",
    "moses_reference_statistics",
    "passes_moses_filters",
    "plain_validity_wo_correction",
    "novelty",
    "nspdk",
    "reference_statistics",
    "scaffold_counts",
    "scaffold_similarity",
    "snn",
    "tanimoto",
    "uniqueness",
    "validity",
    "validity_wo_correction",
]

_FCD_INSTALL = 'pip install torch==2.13.0 && pip install -e ".[metrics]"'

#: versions of the cached reference statistics: bump when their computation changes
FCD_VERSION = 1
NSPDK_VERSION = 1


# ------------------------------------------------------------------ basics


def _mol(obj: str | Chem.Mol | None) -> Chem.Mol | None:
    """RDKit molecule of a SMILES (``""`` and unparsable give ``None``), as MOSES ``get_mol``."""
    if obj is None:
        return None
    if isinstance(obj, Chem.Mol):
        return obj if obj.GetNumAtoms() > 0 else None
    if not obj:
        return None
    with BlockLogs():
        return Chem.MolFromSmiles(obj)


def canonical_smiles(obj: str | Chem.Mol | None) -> str | None:
    """RDKit canonical (isomeric) SMILES, or ``None`` for ``""``/``None``/unparsable input."""
    m = _mol(obj)
    if m is None:
        return None
    with BlockLogs():
        return Chem.MolToSmiles(m)


def _valid_canonical(smiles: Iterable[str | Chem.Mol | None]) -> list[str]:
    return [c for c in map(canonical_smiles, smiles) if c]


def validity(smiles: Sequence[str | None]) -> float:
    """Fraction of samples that are non-empty, RDKit-parsable SMILES (MOSES ``fraction_valid``).

    Args:
      smiles: one entry per sample, ``""`` or ``None`` where decoding failed.

    Returns:
      The fraction in [0, 1].

    Raises:
      ValueError: an empty list.
    """
    if len(smiles) == 0:
        raise ValueError("validity of an empty sample list")
    return len(_valid_canonical(smiles)) / len(smiles)


def validity_wo_correction(raw_smiles: Sequence[str | None]) -> float:
    """Validity of the SMILES decoded *without* valency correction (``""`` for failures).

    Same computation as :func:`validity`, on the uncorrected decodings of the same samples
    (second list of :meth:`genmodels.domains.molecules.MoleculeDomain.decode_smiles`).
    """
    return validity(raw_smiles)


def plain_validity_wo_correction(raw_smiles: Sequence[str | None]) -> float:
    """PARD's plain validity: the fraction of raw samples that parse with no charged atom.

    Args:
      raw_smiles: the uncorrected decodings (built with the charge rule), ``""`` for
        failures.

    Returns:
      The fraction in [0, 1] (at most :func:`validity_wo_correction`).

    Raises:
      ValueError: an empty list.
    """
    if len(raw_smiles) == 0:
        raise ValueError("validity of an empty sample list")
    mols = [_mol(s) for s in raw_smiles]
    neutral = [m is not None and all(a.GetFormalCharge() == 0 for a in m.GetAtoms()) for m in mols]
    return float(np.mean(neutral))


def uniqueness(smiles: Sequence[str | None]) -> float:
    """Distinct canonical SMILES over valid samples (MOSES ``unique@k``, k = number valid).

    Returns:
      The fraction in [0, 1]; 0.0 when no sample is valid.
    """
    valid = _valid_canonical(smiles)
    return len(set(valid)) / len(valid) if valid else 0.0


def novelty(
    smiles: Sequence[str | None], train_smiles: Iterable[str], train_canonical: bool = False
) -> float:
    """Fraction of the distinct valid samples that are not training molecules (MOSES ``novelty``).

    Args:
      smiles: the samples (invalid entries are ignored).
      train_smiles: training SMILES.
      train_canonical: the training SMILES are already RDKit canonical (e.g.
        :attr:`MoleculeDataset.train_smiles`), so they are not canonicalized again.

    Returns:
      ``|unique valid - train| / |unique valid|``; 0.0 when no sample is valid.
    """
    gen = set(_valid_canonical(smiles))
    if not gen:
        return 0.0
    train = set(train_smiles) if train_canonical else set(_valid_canonical(train_smiles))
    return len(gen - train) / len(gen)


# ------------------------------------------------------------------ FCD


def _import_fcd():
    try:
        import fcd  # noqa: PLC0415 - torch is optional: import only when FCD is asked for
    except ImportError as e:
        raise ImportError(
            f"FCD needs torch and the fcd package ({e}). Install them with: {_FCD_INSTALL}"
        ) from e
    return fcd


def fcd_statistics(
    smiles: Sequence[str],
    device: str | None = "cpu",
    batch_size: int = 128,
    progress: str | None = None,
) -> dict[str, np.ndarray]:
    """Mean and covariance of ChemNet activations of the valid molecules of a set.

    Args:
      smiles: SMILES (invalid or empty entries are dropped; the rest are canonicalized).
      device: torch device for ChemNet (``None``: CUDA when available).
      batch_size: ChemNet batch size.
      progress: description of a tqdm bar on stderr (``None``: no bar).

    Returns:
      ``{"mu": [512], "sigma": [512, 512]}`` float64.

    Raises:
      ImportError: torch / fcd missing (the message says how to install them).
      ValueError: fewer than 2 valid molecules.
    """
    fcd_pkg = _import_fcd()
    can = _valid_canonical(smiles)
    if len(can) < 2:
        raise ValueError(f"FCD needs at least 2 valid molecules, got {len(can)}")
    model = fcd_pkg.load_ref_model()
    chunk, parts = 8 * batch_size, []  # whole batches per chunk: the same batches as one call
    bar = tqdm(total=len(can), desc=progress, unit="mol", disable=progress is None)
    # n_jobs=0: no DataLoader worker processes (a fork of a JAX process is unsafe)
    with warnings.catch_warnings(), bar:
        # fcd 1.2.2 calls np.row_stack, deprecated in NumPy 2
        warnings.simplefilter("ignore", DeprecationWarning)
        for k in range(0, len(can), chunk):
            part = can[k : k + chunk]
            parts.append(fcd_pkg.get_predictions(model, part, batch_size, n_jobs=0, device=device))
            bar.update(len(part))
    act = np.concatenate(parts).astype(np.float64)
    return {"mu": act.mean(0), "sigma": np.cov(act.T)}


def fcd(
    smiles: Sequence[str],
    ref_smiles: Sequence[str] | None = None,
    ref_stats: Mapping[str, np.ndarray] | None = None,
    device: str | None = "cpu",
    progress: bool = False,
) -> float:
    """Frechet ChemNet Distance of the valid samples to a reference set (MOSES ``FCD/Test``).

    :func:`frechet_distance` of ChemNet's penultimate activations (Preuer et al., *Frechet
    ChemNet Distance*, J. Chem. Inf. Model. 2018).

    Args:
      smiles: the samples (invalid entries are dropped).
      ref_smiles: reference SMILES, or
      ref_stats: precomputed ``{"mu", "sigma"}`` (e.g. ``moses_reference_statistics()["FCD"]``).
      device: torch device.
      progress: tqdm bars while computing ChemNet activations.

    Returns:
      The FCD (NaN when fewer than 2 samples are valid).

    Raises:
      ImportError: torch / fcd missing.
      ValueError: neither or both of ``ref_smiles`` and ``ref_stats``.
    """
    if (ref_smiles is None) == (ref_stats is None):
        raise ValueError("give exactly one of ref_smiles and ref_stats")
    _import_fcd()
    if len(_valid_canonical(smiles)) < 2:
        return float("nan")
    bar = (lambda what: f"FCD {what}") if progress else (lambda what: None)
    gen = fcd_statistics(smiles, device=device, progress=bar("samples"))
    if ref_stats is None:
        ref_stats = fcd_statistics(ref_smiles, device=device, progress=bar("reference"))
    return frechet_distance(gen["mu"], gen["sigma"], ref_stats["mu"], ref_stats["sigma"])


def moses_reference_statistics(split: str = "test") -> dict:
    """MOSES' precomputed statistics of its test set (``graphs/moses/test_stats.npz``).

    The file is a pickled dict (molsets 0.3.1) with ``FCD`` (``mu``, ``sigma``), ``SNN``
    (``fps``: [176074, 1024] uint8 Morgan bits), ``Frag`` and ``Scaf`` (``Counter``s) and
    property values. It is loaded only after :func:`genmodels.datasets.registry.fetch` has
    checked its pinned sha256, because unpickling runs code.

    Args:
      split: only ``"test"`` ships here.

    Returns:
      The statistics dict.
    """
    from genmodels.datasets.registry import fetch  # noqa: PLC0415 - metrics need no data otherwise

    if split != "test":
        raise ValueError("only the MOSES test statistics (test_stats.npz) are available")
    path = fetch("moses", "graphs/moses/test_stats.npz")
    with np.load(path, allow_pickle=True) as z:  # checksum-verified trusted file
        return z["stats"].item()


# ------------------------------------------------------------------ NSPDK


def mols_to_nx(mols: Iterable[str | Chem.Mol | None]) -> list[nx.Graph]:
    """Labelled graphs of molecules for NSPDK (GDSS ``mols_to_nx``); invalid entries are dropped.

    Node attribute ``label`` = atom symbol; edge attribute ``label`` =
    ``int(bond.GetBondTypeAsDouble())`` (aromatic 1.5 -> 1, as in GDSS).
    """
    graphs = []
    for obj in mols:
        m = _mol(obj)
        if m is None:
            continue
        g = nx.Graph()
        for a in m.GetAtoms():
            g.add_node(a.GetIdx(), label=a.GetSymbol())
        for b in m.GetBonds():
            g.add_edge(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), label=int(b.GetBondTypeAsDouble()))
        graphs.append(g)
    return graphs


def nspdk(
    smiles: Sequence[str | Chem.Mol | None],
    ref: Sequence[str | Chem.Mol] | Mapping[int, float],
    nbits: int | None = 16,
    progress: bool = False,
) -> float:
    """NSPDK MMD between reference molecules and the valid samples (GDSS settings).

    Args:
      smiles: samples (invalid entries dropped).
      ref: reference molecules (GDSS: the test set) or their precomputed
        :func:`genmodels.metrics.nspdk.nspdk_mean_embedding` of :func:`mols_to_nx` graphs.
      nbits: feature folding (see :mod:`genmodels.metrics.nspdk`).
      progress: tqdm bars while computing NSPDK features.

    Returns:
      MMD² (NaN when no sample is valid).
    """
    gen = mols_to_nx(smiles)
    if not gen:
        return float("nan")
    bar = (lambda what: f"NSPDK {what}") if progress else (lambda what: None)
    ref_emb = (
        dict(ref)
        if isinstance(ref, Mapping)
        else nspdk_mean_embedding(mols_to_nx(ref), nbits=nbits, progress=bar("reference"))
    )
    gen = [g for g in gen if g.number_of_nodes() > 0]  # as nspdk_mmd drops empty graphs
    gen_emb = nspdk_mean_embedding(gen, nbits=nbits, progress=bar("samples"))
    return nspdk_mmd(ref_emb, gen_emb)


def reference_statistics(
    smiles: Sequence[str],
    key: Mapping,
    *,
    fcd: bool = True,
    nspdk: bool = True,
    name: str = "reference",
) -> dict:
    """FCD statistics and NSPDK mean embedding of a reference set (e.g. a test split),
    read from the metric disk cache (:mod:`genmodels.metrics.cache`) or computed with a
    progress bar and stored there.

    Args:
      smiles: the reference SMILES.
      key: what identifies the set besides its content (data set, split, the data files'
        checksums); digests of ``smiles``, the RDKit and fcd versions are added.
      fcd, nspdk: which statistics.
      name: the set's name in the progress bars, e.g. ``"qm9 test"``.

    Returns:
      ``{"fcd": {"mu", "sigma"}, "nspdk": {feature id: value}}``, the parts asked for,
      identical whether computed or read back.
    """
    import rdkit  # noqa: PLC0415

    key = {**key, "smiles": content_digest(smiles), "num": len(smiles), "rdkit": rdkit.__version__}
    out: dict = {}
    if fcd:
        out["fcd"] = cached_arrays(
            "fcd-ref",
            {**key, "fcd": getattr(_import_fcd(), "__version__", "?")},
            lambda: fcd_statistics(smiles, progress=f"FCD reference ({name})"),
            version=FCD_VERSION,
        )
    if nspdk:

        def embed() -> dict[str, np.ndarray]:
            emb = nspdk_mean_embedding(mols_to_nx(smiles), progress=f"NSPDK reference ({name})")
            return {"ids": np.fromiter(emb, np.uint64), "values": np.fromiter(emb.values(), float)}

        arrays = cached_arrays("nspdk-ref", key, embed, version=NSPDK_VERSION)
        out["nspdk"] = dict(zip(arrays["ids"].tolist(), arrays["values"].tolist()))
    return out


# ------------------------------------------------------------------ MOSES-style


def fingerprints(mols: Iterable[str | Chem.Mol | None], radius: int = 2, n_bits: int = 1024):
    """Morgan bit fingerprints (MOSES ``fingerprint(fp_type='morgan')``: radius 2, 1024 bits).

    Args:
      mols: SMILES or molecules; invalid entries are dropped.

    Returns:
      [n, n_bits] uint8 array.
    """
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    rows = [gen.GetFingerprintAsNumPy(m).astype(np.uint8) for m in map(_mol, mols) if m is not None]
    return np.stack(rows) if rows else np.zeros((0, n_bits), np.uint8)


def tanimoto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tanimoto similarities of bit fingerprints, [n, m]; two empty fingerprints give 1 (MOSES)."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    inter = a @ b.T  # [n, m]
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        t = inter / union
    return np.where(union > 0, t, 1.0)


def snn(
    smiles: Sequence[str | Chem.Mol | None],
    ref: Sequence[str | Chem.Mol] | None = None,
    ref_fps: np.ndarray | None = None,
    chunk: int = 8192,
) -> float:
    """Similarity to nearest neighbour: mean over valid samples of max Tanimoto to the reference.

    Args:
      smiles: samples (invalid dropped, duplicates kept).
      ref: reference molecules, or
      ref_fps: their :func:`fingerprints` (e.g. ``moses_reference_statistics()["SNN"]["fps"]``).
      chunk: reference rows per block (memory bound).

    Returns:
      SNN in [0, 1] (NaN when no sample is valid).
    """
    if (ref is None) == (ref_fps is None):
        raise ValueError("give exactly one of ref and ref_fps")
    g = fingerprints(smiles)
    if len(g) == 0:
        return float("nan")
    r = fingerprints(ref) if ref_fps is None else np.asarray(ref_fps)
    best = np.zeros(len(g))
    for k in range(0, len(r), chunk):
        best = np.maximum(best, tanimoto(g, r[k : k + chunk]).max(1))
    return float(best.mean())


def internal_diversity(smiles: Sequence[str | Chem.Mol | None], p: int = 1) -> float:
    """MOSES IntDiv_p: ``1 - mean_i (mean_j T(i, j)^p)^(1/p)`` over valid samples (i = j included).

    Returns:
      The diversity (NaN when no sample is valid).
    """
    fps = fingerprints(smiles)
    if len(fps) == 0:
        return float("nan")
    t = tanimoto(fps, fps).astype(np.float64) ** p
    return float(1.0 - np.mean(t.mean(0) ** (1.0 / p)))


def _fragments(m: Chem.Mol) -> list[str]:
    with BlockLogs():
        return Chem.MolToSmiles(AllChem.FragmentOnBRICSBonds(m)).split(".")


def _scaffold(m: Chem.Mol, min_rings: int = 2) -> str | None:
    try:
        with BlockLogs():
            sc = MurckoScaffold.GetScaffoldForMol(m)
            s = Chem.MolToSmiles(sc)
    except (ValueError, RuntimeError):
        return None
    if not s or sc.GetRingInfo().NumRings() < min_rings:
        return None
    return s


def fragment_counts(mols: Iterable[str | Chem.Mol | None]) -> Counter:
    """Counts of BRICS fragments (SMILES) over valid molecules (MOSES ``compute_fragments``)."""
    c: Counter = Counter()
    for m in map(_mol, mols):
        if m is not None:
            c.update(_fragments(m))
    return c


def scaffold_counts(mols: Iterable[str | Chem.Mol | None], min_rings: int = 2) -> Counter:
    """Counts of Bemis-Murcko scaffolds with >= ``min_rings`` rings (MOSES ``compute_scaffolds``)."""
    c: Counter = Counter()
    for m in map(_mol, mols):
        if m is not None and (s := _scaffold(m, min_rings)) is not None:
            c[s] += 1
    return c


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if not a or not b:
        return float("nan")
    keys = sorted(a.keys() | b.keys())
    u = np.array([a.get(k, 0) for k in keys], np.float64)
    v = np.array([b.get(k, 0) for k in keys], np.float64)
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def _count_similarity(counts, smiles, ref, ref_counts) -> float:
    """Cosine similarity of ``counts(smiles)`` to ``counts(ref)`` or given ``ref_counts``."""
    if (ref is None) == (ref_counts is None):
        raise ValueError("give exactly one of ref and ref_counts")
    return _cosine(counts(smiles), counts(ref) if ref_counts is None else ref_counts)


def fragment_similarity(
    smiles: Sequence[str | Chem.Mol | None],
    ref: Sequence[str | Chem.Mol] | None = None,
    ref_counts: Mapping[str, float] | None = None,
) -> float:
    """MOSES Frag: cosine similarity of BRICS fragment counts (samples vs reference)."""
    return _count_similarity(fragment_counts, smiles, ref, ref_counts)


def scaffold_similarity(smiles, ref=None, ref_counts=None) -> float:
    """MOSES Scaf: cosine similarity of Bemis-Murcko scaffold counts (samples vs reference;
    arguments as :func:`fragment_similarity`)."""
    return _count_similarity(scaffold_counts, smiles, ref, ref_counts)


#: MOSES's medicinal-chemistry filters (molecularsets/moses ``moses/metrics/mcf.csv``, MIT
#: licence): SMARTS of groups its data set excludes (e.g. Michael acceptors, epoxides,
#: aziridines, aldehydes, disulfides, azo and triazene groups, many halogens).
MOSES_MCF = (
    "[#6]=&!@[#6]-[#6]#[#7]",
    "[#6]=&!@[#6]-[#16](=[#8])=[#8]",
    "[#6]=&!@[#6&!H0]-&!@[#6](=[#8])-&!@[#7]",
    "[H]C([H])([#6])[F,Cl,Br,I]",
    "[#6]1-[#8]-[#6]-1",
    "[#6]-[#7]=[#6]=[#8]",
    "[#6&!H0]=[#8]",
    "[#6](=&!@[#7&!H0])-&!@[#6,#7,#8,#16]",
    "[#6]1-[#7]-[#6]-1",
    "[#6]~&!@[#7]~&!@[#7]~&!@[#6]",
    "[#7]=&!@[#7]",
    "[H][#6]-1=[#6]([H])-[#6]=[#6](-*)-[#8]-1",
    "[H][#6]-1=[#6]([H])-[#6]=[#6](-*)-[#16]-1",
    "[#17,#35,#53]-c(:*):[!#1!#6]:*",
    "[H][#7]([H])-[#6]-1=[#6]-[#6]=[#6]-[#6]=[#6]-1",
    "[#16]~[#16]",
    "[#7]~&!@[#7]~&!@[#7]",
    "[#7]-&!@[#6&!H0&!H1]-&!@[#7]",
    "[#6&!H0](-&!@[#8])-&!@[#8]",
    "[#35].[#35].[#35]",
    "[#17].[#17].[#17].[#17]",
    "[#9].[#9].[#9].[#9].[#9].[#9].[#9]",
)
_MOSES_ALLOWED = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})


@cache
def _moses_alerts():
    from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams

    params = FilterCatalogParams()
    params.AddCatalog(FilterCatalogParams.FilterCatalogs.PAINS)
    return [Chem.MolFromSmarts(s) for s in MOSES_MCF], FilterCatalog(params)


def passes_moses_filters(obj: str | Chem.Mol | None) -> bool:
    """Whether a molecule passes MOSES's data-set filters (``mol_passes_filters``).

    Args:
      obj: SMILES or molecule (invalid: ``False``).

    Returns:
      ``True`` when it has no ring of 8+ atoms, no formal charge, only C/N/S/O/F/Cl/Br/H
      and no MCF or PAINS match (with explicit hydrogens).
    """
    m = _mol(obj)
    if m is None:
        return False
    if any(len(r) >= 8 for r in m.GetRingInfo().AtomRings()):
        return False
    atoms = m.GetAtoms()
    if any(a.GetFormalCharge() != 0 for a in atoms):
        return False
    if any(a.GetSymbol() not in _MOSES_ALLOWED for a in atoms):
        return False
    mcf, pains = _moses_alerts()
    mh = Chem.AddHs(m)
    if any(mh.HasSubstructMatch(q) for q in mcf) or pains.HasMatch(mh):
        return False
    return Chem.MolFromSmiles(Chem.MolToSmiles(m)) is not None


def filters(smiles: Sequence[str | Chem.Mol | None]) -> float:
    """MOSES Filters: the fraction of valid samples passing :func:`passes_moses_filters`.

    Returns:
      The fraction (NaN when no sample is valid).
    """
    mols = [m for m in map(_mol, smiles) if m is not None]
    if not mols:
        return float("nan")
    return float(np.mean([passes_moses_filters(m) for m in mols]))


# ------------------------------------------------------------------ all together


def molecule_metrics(
    smiles: Sequence[str | None],
    train_smiles: Sequence[str],
    test_smiles: Sequence[str],
    raw_smiles: Sequence[str | None] | None = None,
    *,
    train_canonical: bool = False,
    compute_fcd: bool = True,
    compute_nspdk: bool = True,
    moses: bool = False,
    plain: bool = False,
    test_fcd_stats: Mapping[str, np.ndarray] | None = None,
    test_nspdk_embedding: Mapping[int, float] | None = None,
    device: str | None = "cpu",
    progress: bool = False,
) -> dict[str, float]:
    """The GDSS molecule metrics (plus MOSES-style ones on request) of a list of samples.

    Args:
      smiles: one SMILES per sample after correction, ``""`` where decoding failed.
      train_smiles: training SMILES (novelty reference).
      test_smiles: test SMILES (FCD, NSPDK and MOSES-style reference).
      raw_smiles: the same samples decoded without correction (adds
        ``validity_wo_correction``).
      train_canonical: ``train_smiles`` are already canonical (skips re-canonicalizing).
      compute_fcd: include ``fcd`` (needs torch + fcd).
      compute_nspdk: include ``nspdk``.
      moses: include ``snn``, ``frag``, ``scaf``, ``int_div``, ``int_div2`` (vs
        ``test_smiles``) and ``filters``.
      plain: with ``raw_smiles``, include ``plain_validity_wo_correction`` (PARD's plain
        validity; ``validity_wo_correction`` is its relaxed one).
      test_fcd_stats, test_nspdk_embedding: precomputed test references (saves time when
        evaluating many sample sets).
      device: torch device for ChemNet.
      progress: tqdm bars on stderr while computing FCD and NSPDK features.

    Returns:
      ``{"validity", ["validity_wo_correction"], ["plain_validity_wo_correction"],
      "uniqueness", "novelty", ["fcd"], ["nspdk"], [MOSES keys]}`` as floats.
    """
    out: dict[str, float] = {"validity": validity(smiles)}
    if raw_smiles is not None:
        if len(raw_smiles) != len(smiles):
            raise ValueError(
                f"raw_smiles has {len(raw_smiles)} entries but smiles has {len(smiles)}"
            )
        out["validity_wo_correction"] = validity_wo_correction(raw_smiles)
        if plain:
            out["plain_validity_wo_correction"] = plain_validity_wo_correction(raw_smiles)
    out["uniqueness"] = uniqueness(smiles)
    out["novelty"] = novelty(smiles, train_smiles, train_canonical=train_canonical)
    valid = _valid_canonical(smiles)
    if compute_fcd:
        if test_fcd_stats is not None:
            out["fcd"] = fcd(valid, ref_stats=test_fcd_stats, device=device, progress=progress)
        else:
            out["fcd"] = fcd(valid, ref_smiles=test_smiles, device=device, progress=progress)
    if compute_nspdk:
        ref = test_nspdk_embedding if test_nspdk_embedding is not None else test_smiles
        out["nspdk"] = nspdk(valid, ref, progress=progress)
    if moses:
        out["snn"] = snn(valid, test_smiles)
        out["frag"] = fragment_similarity(valid, test_smiles)
        out["scaf"] = scaffold_similarity(valid, test_smiles)
        out["int_div"] = internal_diversity(valid, p=1)
        out["int_div2"] = internal_diversity(valid, p=2)
        out["filters"] = filters(valid)
    return out
