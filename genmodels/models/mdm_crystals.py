"""Masked diffusion (absorbing state) over crystal atom types: composition generation.

A crystal with ``n`` atoms is a set of ``n`` tokens in one leaf,

- ``types`` [B, N]: the element of every atom as an index into the vocabulary (the
  elements present in the configured training and evaluation splits, sorted by atomic
  number), padding 0 beyond the crystal's atom count; ``N`` is the training split's
  largest atom count (perov_5: 5),

so a sample is a composition: a multiset of elements with the atom count drawn from the
training crystals (as :class:`~genmodels.models.mdm.MDMMolecules` draws atom counts).
Positions carry no meaning: the network (:class:`SetTransformer`) is permutation
equivariant (no positional encoding, self-attention restricted to real atoms), so the
model is a distribution over multisets. Geometry (lattice, coordinates) is not modelled.

Process, loss and samplers are those of the molecule and image models
(:mod:`genmodels.models.mdm`): one :class:`~genmodels.processes.masked.MaskedDiffusion`
(mask id ``K``), padding tokens (``ctx["masks"]["types"]``) never masked, counted or
sampled, and the continuous-time NELBO of MDLM (Sahoo et al. 2024, eq. 10) / MD4 (Shi et
al. 2024),

    L = E_{t ~ U(eps, 1)} [ -alpha'(t) / (1 - alpha(t))
          * sum_{masked atoms l of x_t} -log p_theta(x_0^l | x_t) ],

per crystal, averaged over the batch, with antithetic times; SUBS parameterization (no
mask logit, unmasked tokens copied). Sampling: ``"fhs"``, the first-hitting sampler of
Zheng et al. 2024 (one atom per network call: exactly ``n`` calls for the largest crystal
of a batch), or ``"ancestral"`` on ``steps`` uniform steps (MDLM's cached sampler);
categorical draws float64-grade by default (``precision="float32"``: the truncated
float32 Gumbel draws that Zheng et al. show lower the temperature).

Sample files are ``.txt``: one composition per line as a pymatgen formula with explicit
counts (``Composition.formula``, e.g. ``Ca1 Ti1 O3``). :meth:`MDMCrystals.evaluate`
reports SMACT compositional validity (CDVAE's ``smact_validity``,
:func:`genmodels.metrics.crystals.composition_validity`), the 1-Wasserstein distance of
the number of distinct elements per crystal to the reference split (CDVAE's
``nelem`` statistic, here over all samples), the total-variation distance of the
atom-weighted element histogram, uniqueness and novelty of the reduced formulas.

Departures from the references: MDLM and MD4 are sequence models on text; here the
sequence is the atom set of a crystal and the network a small set transformer. CDVAE-style
crystal generators (and DiffCSP/FlowMM) generate the atom types jointly with the lattice
and the coordinates; this model generates the composition only (the issue's "crystal atom
types" option of the masked-diffusion method).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.scipy.special import gammaln
from pymatgen.core import Composition, Element, Structure
from tqdm.auto import tqdm

from genmodels.core.types import Array, Context, State
from genmodels.models.base import split_model
from genmodels.models.mdm import PRECISIONS, SAMPLERS
from genmodels.nets.embed import sinusoidal_embedding
from genmodels.processes.base import corrupt_state, loss_state
from genmodels.processes.masked import CosineSchedule, LinearSchedule, MaskedDiffusion
from genmodels.samplers.masked import masked_sample
from genmodels.train.config import OptimConfig, TrainConfig
from genmodels.train.data import ArrayLoader
from genmodels.train.sharding import batch_sharded, data_mesh, replicated

__all__ = [
    "MDMCrystalConfig",
    "MDMCrystals",
    "SetTransformer",
    "SetTransformerConfig",
    "as_composition",
    "read_compositions",
    "write_compositions",
]

# Logit of a padded key: finite (a fully padded row stays NaN-free), exp() underflows to 0.
_NEG = -1e9


# ------------------------------------------------------------------------------ network


class _MLP(nnx.Module):
    """``Linear -> SiLU -> Linear``."""

    def __init__(self, din: int, dhid: int, dout: int, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(din, dhid, rngs=rngs)
        self.l2 = nnx.Linear(dhid, dout, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        return self.l2(jax.nn.silu(self.l1(x)))


class SetBlock(nnx.Module):
    """Pre-LN transformer block over a padded set (no positions): masked self-attention
    over the real elements, then a per-element FFN.

    ``h <- h + W_o MHA(LN(h))`` with keys restricted to ``m_j = 1``, then
    ``h <- h + FFN(LN(h))``; padded rows are zeroed.

    Args:
      dim: width (divisible by ``heads``).
      heads: attention heads.
      ffn: hidden width of the FFN.
      rngs: parameter RNGs.
    """

    def __init__(self, dim: int, heads: int, ffn: int, *, rngs: nnx.Rngs):
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.ln_att = nnx.LayerNorm(dim, rngs=rngs)
        self.qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
        self.out = nnx.Linear(dim, dim, rngs=rngs)
        self.ln_ffn = nnx.LayerNorm(dim, rngs=rngs)
        self.ffn = _MLP(dim, ffn, dim, rngs=rngs)

    def __call__(self, h: Array, mask: Array) -> Array:
        """Args: h [B, N, D], mask [B, N] (1 real, 0 padding). Returns [B, N, D]."""
        b, n, d = h.shape
        hd = d // self.heads
        m = mask.astype(h.dtype)
        qkv = self.qkv(self.ln_att(h)).reshape(b, n, 3, self.heads, hd)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, N, H, hd]
        s = jnp.einsum("bihd,bjhd->bijh", q, k) / jnp.sqrt(float(hd))  # [B, N, N, H]
        s = jnp.where(m[:, None, :, None] > 0, s, _NEG)
        att = jax.nn.softmax(s, axis=2)  # over keys j
        o = jnp.einsum("bijh,bjhd->bihd", att, v).reshape(b, n, d)
        h = h + self.out(o)
        h = h + self.ffn(self.ln_ffn(h))
        return h * m[..., None]


class SetTransformer(nnx.Module):
    """Permutation-equivariant token network: ``(tokens [B, N], mask [B, N], t [B]) ->
    logits [B, N, K]`` over the K real categories (SUBS: no mask logit).

    Embedding ``h_i = E[x_i] + w_n (n / c) (+ MLP(phi(t)))`` with ``n`` the number of real
    elements, ``c`` a fixed scale and ``phi`` a sinusoidal embedding (only with
    ``time_conditioning``); then ``layers`` :class:`SetBlock` s, a final LayerNorm and an
    MLP head. Every map is per element or a masked sum over elements, so permuting the
    real elements permutes the outputs, and outputs on real elements do not depend on
    the padded tokens or on N. Padded outputs are 0.

    Args:
      vocab: K + 1 (real categories plus the mask id K).
      dim, heads, layers, ffn: sizes.
      time_conditioning: add an embedding of ``t``; ``False`` ignores ``t``.
      time_scale: ``t`` in [0, 1] is multiplied by this before the sinusoidal embedding.
      size_scale: the element count enters as ``n / size_scale``.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        vocab: int,
        *,
        dim: int = 64,
        heads: int = 4,
        layers: int = 3,
        ffn: int = 128,
        time_conditioning: bool = False,
        time_scale: float = 1000.0,
        size_scale: float = 10.0,
        rngs: nnx.Rngs,
    ):
        self.vocab = vocab
        self.time_conditioning = time_conditioning
        self.time_scale = time_scale
        self.size_scale = size_scale
        self.embed = nnx.Embed(vocab, dim, rngs=rngs)
        self.size_embed = nnx.Param(jnp.zeros((dim,)))
        if time_conditioning:
            self.time_mlp = _MLP(dim, dim, dim, rngs=rngs)
        self.blocks = nnx.List([SetBlock(dim, heads, ffn, rngs=rngs) for _ in range(layers)])
        self.ln_out = nnx.LayerNorm(dim, rngs=rngs)
        self.head = _MLP(dim, dim, vocab - 1, rngs=rngs)

    def __call__(self, tokens: Array, mask: Array, t: Array | None = None) -> Array:
        """Logits of the clean tokens.

        Args:
          tokens: int [B, N] in ``[0, vocab)``.
          mask: [B, N], 1 for real elements and 0 for padding.
          t: [B] times; required with ``time_conditioning``, ignored otherwise.

        Returns:
          [B, N, vocab - 1] logits, zero on padding.
        """
        m = mask.astype(jnp.float32)
        tokens = jnp.where(m > 0, tokens, 0).astype(jnp.int32)
        h = self.embed(tokens)  # [B, N, D]
        size = jnp.sum(m, axis=1) / self.size_scale  # [B]
        h = h + size[:, None, None] * self.size_embed[...]
        if self.time_conditioning:
            if t is None:
                raise ValueError("this SetTransformer is time-conditioned: pass t [B]")
            temb = sinusoidal_embedding(jnp.asarray(t) * self.time_scale, h.shape[-1])
            h = h + self.time_mlp(temb)[:, None, :]
        h = h * m[..., None]
        for block in self.blocks:
            h = block(h, m)
        return self.head(self.ln_out(h)) * m[..., None]


@dataclass(frozen=True)
class SetTransformerConfig:
    """Sizes of a :class:`SetTransformer` (the vocabulary comes from the method).

    Attributes:
      dim: token width.
      heads: attention heads (divides ``dim``).
      layers: number of blocks.
      ffn: FFN hidden width.
      time_scale: multiplier of ``t`` before the sinusoidal embedding.
      size_scale: the atom count enters the embedding as ``n / size_scale``.
    """

    dim: int = 64
    heads: int = 4
    layers: int = 3
    ffn: int = 128
    time_scale: float = 1000.0
    size_scale: float = 10.0

    def make(self, vocab: int, time_conditioning: bool, rngs: nnx.Rngs) -> SetTransformer:
        """The network for ``vocab`` tokens (mask id included)."""
        return SetTransformer(
            vocab,
            dim=self.dim,
            heads=self.heads,
            layers=self.layers,
            ffn=self.ffn,
            time_conditioning=time_conditioning,
            time_scale=self.time_scale,
            size_scale=self.size_scale,
            rngs=rngs,
        )


class MDMCrystalNet(nnx.Module):
    """``(state, t, ctx) -> {"types": [B, N, K]}`` logits (a :class:`SetTransformer`).

    Args:
      net: sizes.
      num_types: K, the vocabulary of elements (the network's input vocabulary is K + 1).
      time_conditioning: feed ``t`` to the network.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        net: SetTransformerConfig,
        num_types: int,
        time_conditioning: bool = False,
        *,
        rngs: nnx.Rngs,
    ):
        self.net = net.make(num_types + 1, time_conditioning, rngs)

    def __call__(self, state: State, t: Array, ctx: Context) -> State:
        return {"types": self.net(state["types"], ctx["node_mask"], t)}


# ------------------------------------------------------------------------------ compositions


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
    comp = Composition(obj) if isinstance(obj, str) else obj
    comp = comp.element_composition
    if len(comp) == 0 or comp.num_atoms <= 0:
        raise ValueError(f"empty composition {str(obj)!r}")
    for el, amt in comp.items():
        if not isinstance(el, Element):
            raise ValueError(f"{el} is not a chemical element")
        if amt <= 0 or abs(amt - round(amt)) > 1e-6:
            raise ValueError(f"{el} has a non-integer or non-positive count {amt}")
    return comp


def write_compositions(comps: Sequence[Composition], path: str | Path) -> Path:
    """One composition per line as ``Composition.formula`` (``Ca1 Ti1 O3``)."""
    path = Path(path)
    lines = [as_composition(c).formula for c in comps]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def read_compositions(path: str | Path) -> list[Composition]:
    """The compositions of a ``.txt`` sample file (see :func:`write_compositions`).

    Raises:
      FileNotFoundError: no such file.
      ValueError: a line that is empty or not a whole-number composition of elements;
        the message names the file and the line number.
    """
    path = Path(path)
    out = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text:
            raise ValueError(f"{path}:{i}: empty line (expected one composition per line)")
        try:
            out.append(as_composition(text))
        except Exception as e:  # pymatgen raises ValueError and others on a bad formula
            raise ValueError(f"{path}:{i}: cannot read composition {text!r}: {e}") from e
    return out


@lru_cache(maxsize=65536)
def _smact_valid(formula: str) -> bool:
    from genmodels.metrics.crystals import composition_validity

    return bool(composition_validity(Composition(formula)))


def _reduced_key(comp: Composition) -> str:
    """A canonical formula of the gcd-reduced composition (cache key of SMACT validity)."""
    return comp.reduced_composition.formula


# ------------------------------------------------------------------------------ method


@dataclass(frozen=True)
class MDMCrystalConfig:
    """A masked-diffusion recipe for crystal compositions (atom types only).

    Attributes:
      dataset: ``perov_5``, ``carbon_24`` or ``mp_20``.
      train_split: split trained on (its atom counts are sampled, its largest count is N).
      eval_split: default reference split of :meth:`MDMCrystals.evaluate`.
      train_limit, eval_limit: load only the first rows of the training / other splits
        (``None``: all).
      elements: the vocabulary as element symbols; ``None``: every element present in
        ``train_split`` and ``eval_split``, sorted by atomic number.
      schedule: ``linear`` (``alpha = 1 - t``) or ``cosine`` (MD4's).
      t_eps: smallest training time (MDLM 1e-3).
      net: set-transformer sizes.
      time_conditioning: feed ``t`` to the network (off: time-agnostic, Zheng et al.).
      sampler: default sampler, ``fhs`` or ``ancestral``.
      sample_steps: steps of the ancestral sampler (FHS takes one step per atom).
      precision: categorical sampling precision, ``float64`` or ``float32``.
      sample_use_ema: sample with the EMA parameters.
      sample_batch: crystals per sampling batch.
    """

    dataset: str = "perov_5"
    train_split: str = "train"
    eval_split: str = "test"
    train_limit: int | None = None
    eval_limit: int | None = None
    elements: tuple[str, ...] | None = None
    schedule: Literal["linear", "cosine"] = "linear"
    t_eps: float = 1e-3
    net: SetTransformerConfig = field(default_factory=SetTransformerConfig)
    time_conditioning: bool = False
    sampler: str = "fhs"
    sample_steps: int = 100
    precision: Literal["float64", "float32"] = "float64"
    sample_use_ema: bool = True
    sample_batch: int = 1000
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def build(self) -> MDMCrystals:
        return MDMCrystals(self)


class MDMCrystals:
    """Masked diffusion over the atom types of crystals (see the module docstring)."""

    samplers = SAMPLERS
    sample_suffix = ".txt"

    def __init__(self, config: MDMCrystalConfig):
        from genmodels.datasets.crystals import CRYSTAL_DATASETS

        if config.dataset not in CRYSTAL_DATASETS:
            raise ValueError(
                f"unknown crystal data set {config.dataset!r}; choose one of "
                f"{tuple(CRYSTAL_DATASETS)}"
            )
        if config.schedule not in ("linear", "cosine"):
            raise ValueError(f"unknown schedule {config.schedule!r}; choose linear or cosine")
        self.config = config

    # ------------------------------------------------------------------ data
    def dataset(self, split: str):
        """One split (:class:`~genmodels.datasets.crystals.CrystalDataset`), parsed and
        cached (``train_limit`` / ``eval_limit`` applied)."""
        from genmodels.datasets.crystals import load_crystals

        cache = self.__dict__.setdefault("_datasets", {})
        if split not in cache:
            c = self.config
            limit = c.train_limit if split == c.train_split else c.eval_limit
            cache[split] = load_crystals(c.dataset, split, limit=limit)
        return cache[split]

    def atomic_numbers(self, split: str) -> list[np.ndarray]:
        """The atomic numbers of every crystal of ``split`` (one int64 array each)."""
        a = self.dataset(split).arrays
        o = a.offsets
        return [np.asarray(a.atomic_numbers[o[i] : o[i + 1]], np.int64) for i in range(len(a))]

    def compositions(self, split: str) -> list[Composition]:
        """The compositions of every crystal of ``split``."""
        cache = self.__dict__.setdefault("_compositions", {})
        if split not in cache:
            cache[split] = [
                Composition(Counter(Element.from_Z(int(z)).symbol for z in zs))
                for zs in self.atomic_numbers(split)
            ]
        return cache[split]

    @cached_property
    def elements(self) -> tuple[str, ...]:
        """The vocabulary: element symbols sorted by atomic number (token k is
        ``elements[k]``)."""
        c = self.config
        if c.elements is not None:
            syms = [Element(s).symbol for s in c.elements]
            if len(set(syms)) != len(syms) or not syms:
                raise ValueError(f"elements must be distinct and non-empty, got {c.elements}")
            return tuple(syms)
        zs: set[int] = set()
        for split in dict.fromkeys((c.train_split, c.eval_split)):
            zs.update(int(z) for z in self.dataset(split).arrays.atomic_numbers)
        return tuple(Element.from_Z(z).symbol for z in sorted(zs))

    @property
    def num_types(self) -> int:
        """K, the number of elements in the vocabulary."""
        return len(self.elements)

    @cached_property
    def _index(self) -> dict[int, int]:
        return {Element(s).Z: k for k, s in enumerate(self.elements)}

    @cached_property
    def train_counts(self) -> np.ndarray:
        """[M] atom counts of the training crystals."""
        return np.asarray(self.dataset(self.config.train_split).arrays.num_atoms, np.int64)

    @property
    def max_atoms(self) -> int:
        """N, the padded length: the training split's largest atom count."""
        return int(self.train_counts.max())

    def token_arrays(self, zs: Sequence[np.ndarray], n: int | None = None) -> np.ndarray:
        """Padded token rows of crystals given by their atomic numbers.

        Args:
          zs: atomic numbers of each crystal (any order; tokens are sorted by atomic
            number, which a permutation-equivariant network does not see).
          n: padded length (default: the largest count among ``zs``).

        Returns:
          int32 [C, n]: vocabulary indices, -1 on padding.

        Raises:
          ValueError: a crystal with no atom or more than ``n``, or an element outside
            the vocabulary.
        """
        counts = [len(z) for z in zs]
        n = int(max(counts, default=1)) if n is None else int(n)
        out = np.full((len(zs), n), -1, np.int32)
        for i, z in enumerate(zs):
            if not 1 <= len(z) <= n:
                raise ValueError(f"crystal {i} has {len(z)} atoms, outside 1..{n}")
            try:
                out[i, : len(z)] = [self._index[int(v)] for v in sorted(z)]
            except KeyError as e:
                sym = Element.from_Z(int(e.args[0])).symbol
                raise ValueError(
                    f"crystal {i} has {sym}, which is not in the vocabulary {self.elements}"
                ) from None
        return out

    def encode(self, objs: Sequence[Composition | Structure | str]) -> tuple[State, Context]:
        """Clean token state and context of compositions or structures.

        Returns:
          ``({"types": int32 [C, N]}, ctx)`` as :meth:`tokens` (``N``: the largest count).
        """
        zs = []
        for o in objs:
            comp = as_composition(o)
            zs.append(np.repeat([el.Z for el in comp], [int(round(a)) for a in comp.values()]))
        return self.tokens({"types": self.token_arrays(zs)})

    def loader(self) -> ArrayLoader:
        types = self.token_arrays(
            self.atomic_numbers(self.config.train_split), self.max_atoms
        )  # [M, N]
        return ArrayLoader(
            {"types": types}, batch_size=self.config.train.batch_size, seed=self.config.train.seed
        )

    @staticmethod
    def context(node_mask: Array) -> dict:
        """``{"num_atoms": [B], "node_mask": [B, N], "masks": {"types": [B, N]}}``."""
        m = jnp.asarray(node_mask, jnp.float32)
        return {
            "num_atoms": jnp.sum(m, axis=1).astype(jnp.int32),
            "node_mask": m,
            "masks": {"types": m},
        }

    def tokens(self, batch: dict) -> tuple[State, dict]:
        """Clean token state and context of a loader batch.

        Args:
          batch: ``{"types": [B, N]}`` vocabulary indices, -1 on padding.

        Returns:
          ``({"types": int32 [B, N]} with padding 0, ctx)`` (:meth:`context`).
        """
        types = jnp.asarray(batch["types"]).astype(jnp.int32)
        ctx = self.context(types >= 0)
        return {"types": jnp.maximum(types, 0)}, ctx

    @cached_property
    def processes(self) -> dict[str, MaskedDiffusion]:
        """``{"types": MaskedDiffusion(K)}``."""
        c = self.config
        sched = LinearSchedule() if c.schedule == "linear" else CosineSchedule()
        return {"types": MaskedDiffusion(self.num_types, sched, c.t_eps)}

    # ----------------------------------------------------------------- model
    def init_model(self, key: Array) -> MDMCrystalNet:
        return MDMCrystalNet(
            self.config.net, self.num_types, self.config.time_conditioning, rngs=nnx.Rngs(key)
        )

    def corrupt(self, x0: State, ctx: Context, key: Array) -> tuple[Array, State, dict]:
        """Training times and corrupted tokens: ``(t [B], xt, aux)`` (antithetic times)."""
        kt, kc = jax.random.split(key)
        t = self.processes["types"].sample_times(kt, x0["types"].shape[0])
        xt, aux = corrupt_state(self.processes, kc, x0, t, ctx)
        return t, xt, aux

    def loss_fn(self, model: MDMCrystalNet, batch: dict, key: Array):
        """The MDLM NELBO (module docstring) per crystal, averaged over the batch.

        Returns:
          ``(loss, metrics)``: ``nll_per_atom``, the NELBO divided by the mean atom count
          (nats; a bound on the NLL of the token sequence), and ``nll_composition``, the
          NELBO minus the mean ``log(n! / prod_e n_e!)`` (a bound on the NLL of the
          composition, nats per crystal: the network is permutation equivariant, so
          the model spreads a composition's probability evenly over its distinct
          orderings).
        """
        x0, ctx = self.tokens(batch)
        t, xt, aux = self.corrupt(x0, ctx, key)
        preds = model(xt, t, ctx)
        total, _ = loss_state(self.processes, preds, x0, xt, t, aux, ctx)
        loss = jnp.mean(total)
        m = ctx["node_mask"]  # [B, N]
        natoms = jnp.sum(m, axis=1)  # [B]
        counts = jnp.sum(jax.nn.one_hot(x0["types"], self.num_types) * m[..., None], axis=1)
        log_orders = gammaln(natoms + 1.0) - jnp.sum(gammaln(counts + 1.0), axis=1)  # [B]
        return loss, {
            "nll_per_atom": loss / jnp.mean(natoms),
            "nll_composition": loss - jnp.mean(log_orders),
        }

    # -------------------------------------------------------------- sampling
    def sample_states(
        self,
        model: MDMCrystalNet,
        key: Array,
        batch: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        precision: str | None = None,
        num_atoms: int | None = None,
    ) -> tuple[State, Context, dict]:
        """One jitted batch of sampled token states.

        Args:
          model: the network.
          key: PRNG key.
          batch: crystals in the batch.
          sampler: ``fhs`` or ``ancestral`` (default: the config's).
          steps: ancestral steps (default: the config's; ignored by ``fhs``).
          precision: ``float64`` or ``float32`` categorical draws (default: the config's).
          num_atoms: give every crystal this many atoms instead of drawing the counts
            from the training set.

        Returns:
          ``(state, ctx, info)``: int32 ``{"types": [B, N]}`` with no mask token left and
          zero padding; ``ctx`` (:meth:`context`); ``info["nfe"]`` the network calls.
        """
        c = self.config
        fn, mesh = self._compiled(
            model,
            batch,
            sampler or c.sampler,
            int(steps or c.sample_steps),
            precision or c.precision,
            num_atoms,
        )
        _, params, _ = split_model(model)
        if mesh is not None:
            params = jax.device_put(params, replicated(mesh))
        return fn(params, key)

    def _compiled(self, model, batch, sampler, steps, precision, num_atoms):
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown MDM sampler {sampler!r}; choose one of {SAMPLERS}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
        n = self.max_atoms
        if num_atoms is not None and not 1 <= num_atoms <= n:
            raise ValueError(f"num_atoms must be in 1..{n}, got {num_atoms}")
        cache = self.__dict__.setdefault("_fn_cache", {})
        graphdef, _, rest = split_model(model)
        ckey = (batch, sampler, steps, precision, num_atoms, graphdef)
        if ckey in cache:
            return cache[ckey]
        shapes = {"types": (batch, n)}
        dtype = PRECISIONS[precision]
        counts = self.train_counts.astype(np.int32)  # host array: no tracer leaks
        ndev = jax.device_count()
        mesh = data_mesh() if ndev > 1 and batch % ndev == 0 else None
        processes = self.processes

        @jax.jit
        def run(params, key):
            net = nnx.merge(graphdef, params, rest)
            kc, ks = jax.random.split(key)
            if num_atoms is None:
                na = jnp.asarray(counts)[jax.random.randint(kc, (batch,), 0, counts.shape[0])]
            else:
                na = jnp.full((batch,), num_atoms, jnp.int32)
            ctx = self.context(jnp.arange(n)[None, :] < na[:, None])
            if mesh is not None:
                ctx = jax.lax.with_sharding_constraint(ctx, batch_sharded(mesh))
            out, info = masked_sample(
                net,
                processes,
                ctx,
                ks,
                shapes=shapes,
                sampler=sampler,
                steps=steps,
                precision=dtype,
                time_conditioning=self.config.time_conditioning,
            )
            return out, ctx, {"nfe": info["nfe"]}

        cache[ckey] = run, mesh
        return run, mesh

    def decode(self, state: State, ctx: Context) -> list[Composition]:
        """The compositions of a token batch (padding dropped).

        Raises:
          ValueError: a mask token (or any index outside the vocabulary) on a real atom.
        """
        types = np.asarray(state["types"])
        real = np.asarray(ctx["node_mask"]) > 0
        bad = real & ((types < 0) | (types >= self.num_types))
        if bad.any():
            i = int(np.argmax(bad.any(1)))
            raise ValueError(f"crystal {i} has tokens outside the vocabulary: {types[i]}")
        syms = np.asarray(self.elements)
        return [Composition(Counter(syms[types[i][real[i]]].tolist())) for i in range(len(types))]

    def sample(
        self,
        model: MDMCrystalNet,
        key: Array,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        precision: str | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        **options: Any,
    ) -> list[Composition]:
        """``num`` sampled compositions.

        Args:
          sampler: ``fhs`` (default) or ``ancestral``.
          steps: ancestral steps.
          precision: ``float64`` (default) or ``float32`` categorical draws.
          batch_size: crystals per jitted batch (default: ``sample_batch``).
        """
        if options:
            raise ValueError(f"MDM sample got unknown options {sorted(options)}")
        batch = batch_size or self.config.sample_batch
        rounds = math.ceil(num / batch)
        out: list[Composition] = []
        for r in tqdm(range(rounds), desc="sample", disable=not progress or rounds == 1):
            st, ctx, _ = self.sample_states(
                model,
                jax.random.fold_in(key, r),
                batch,
                sampler=sampler,
                steps=steps,
                precision=precision,
            )
            out.extend(self.decode(jax.device_get(st), jax.device_get(ctx)))
        return out[:num]

    def uniform_baseline(self, num: int, seed: int = 0) -> list[Composition]:
        """A reference point: atom counts drawn from the training crystals, every atom's
        element drawn uniformly from the vocabulary."""
        rng = np.random.default_rng(seed)
        counts = rng.choice(self.train_counts, size=num)
        syms = np.asarray(self.elements)
        return [Composition(Counter(rng.choice(syms, size=int(n)).tolist())) for n in counts]

    # ------------------------------------------------------------ files, metrics
    def write_samples(self, samples: Sequence[Composition], path: Path) -> None:
        """``.txt``, one ``Composition.formula`` per line."""
        write_compositions(samples, path)

    def read_samples(self, path: Path) -> list[Composition]:
        """Compositions of a ``.txt`` sample file (errors name the file and line)."""
        return read_compositions(path)

    def evaluate(
        self,
        samples: Sequence[Composition | Structure | str],
        split: str | None = None,
        meta: dict | None = None,
    ) -> dict[str, float]:
        """Composition metrics against a reference split (default ``eval_split``).

        Returns:
          - ``comp_validity``: fraction passing CDVAE's SMACT check (charge neutrality and
            Pauling electronegativity over the smact14 oxidation states; one-element and
            all-metal compositions valid);
          - ``nelem_wdist``: 1-Wasserstein distance between the numbers of distinct
            elements per composition of the samples and of the reference (over all
            samples; ``nelem_wdist_valid`` over the valid ones, as CDVAE's ``GenEval``);
          - ``element_tv``: total variation ``1/2 sum_e |p_e - q_e|`` between the
            atom-weighted element frequencies of the samples and of the reference;
          - ``uniqueness``: distinct reduced formulas / ``num``;
          - ``novelty``: fraction of samples whose reduced formula is not in the training
            split;
          - ``num``, ``num_valid``.

        Raises:
          ValueError: no samples, or a sample that is not a composition of elements.
        """
        from scipy.stats import wasserstein_distance

        del meta
        comps = [as_composition(s) for s in samples]
        if not comps:
            raise ValueError("evaluate got no samples")
        ref = self.compositions(split or self.config.eval_split)
        valid = np.array([_smact_valid(_reduced_key(c)) for c in comps], bool)
        n_s = [len(c.elements) for c in comps]
        n_r = [len(c.elements) for c in ref]
        n_v = [n for n, ok in zip(n_s, valid) if ok]

        def hist(cs):
            h: Counter = Counter()
            for c in cs:
                for el, amt in c.items():
                    h[el.symbol] += amt
            tot = sum(h.values())
            return {k: v / tot for k, v in h.items()}

        p, q = hist(comps), hist(ref)
        tv = 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))
        reduced = [c.reduced_formula for c in comps]
        train = {c.reduced_formula for c in self.compositions(self.config.train_split)}
        return {
            "comp_validity": float(valid.mean()),
            "nelem_wdist": float(wasserstein_distance(n_s, n_r)),
            "nelem_wdist_valid": float(wasserstein_distance(n_v, n_r)) if n_v else math.nan,
            "element_tv": float(tv),
            "uniqueness": len(set(reduced)) / len(comps),
            "novelty": float(np.mean([r not in train for r in reduced])),
            "num": float(len(comps)),
            "num_valid": float(valid.sum()),
        }
