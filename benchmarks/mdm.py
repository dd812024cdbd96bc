"""Masked diffusion: first-hitting vs ancestral sampling at equal quality; float32 vs float64.

    python benchmarks/mdm.py                                   # mdm_qm9, pretrained model
    python benchmarks/mdm.py --checkpoint runs/mdm_qm9 --batch 512 --steps 64 256 1000
    python benchmarks/mdm.py --checkpoint init --quick         # tiny run for the smoke test
    python benchmarks/mdm.py --recipe mdm_mnist --checkpoint runs/mdm_mnist --batch 64
    python benchmarks/mdm.py --only-precision --repeats 3      # parts 2, 3 into the JSON
    python benchmarks/mdm.py --help                            # all options

Part 1 (speed at equal quality). At one batch size, the model is sampled with the
first-hitting sampler (``fhs``: one token per network call, no time grid) and with the
ancestral sampler on ``T`` uniform steps for every ``T`` of ``--steps`` (MDLM's cached
sampler: a step whose state did not change reuses the previous logits, so it makes at
most ``T`` calls), all at float64-grade categorical precision. Per sampler: the wall time
of a jitted batch (median of ``--repeats`` calls after a compiling call, each blocking
until ready), its compile time (first call minus the median call), the NFE the sampler
reports, and quality figures on the samples of all its calls (each call has its own key;
the keys, hence the drawn atom counts, are the same for every sampler):

- molecules: ``validity_wo_correction`` (RDKit sanitization of the raw graph, the
  method's ``decode_smiles``; ``validity`` is after GDSS's valency correction), the total
  variation distance of the generated atom-type histogram to the training split's
  (``token_tv``) and the same for bond orders over node pairs (``bond_tv``);
- images: ``token_tv`` of the histogram of pixel levels to the training images'.

Matching rule: the matched ``T`` is the smallest ``T`` whose ``token_tv`` is at most FHS's
plus ``--tv-tol`` and, for molecules, whose ``validity_wo_correction`` is at least FHS's
minus ``--validity-tol``; the speed-up is the ancestral time at that ``T`` over FHS's
(and the NFE ratio likewise). Bootstrap standard errors (over samples) of the quality
figures are recorded, so a tolerance can be judged against the sampling noise. No
matched ``T`` is reported as ``null``.

Part 2 (precision). FHS and the ancestral sampler at ``--precision-steps`` (default: the
largest ``T``; ``--precision-samplers`` picks either) are run with precision float64
and float32 (``--precisions``): float32 Gumbel noise is truncated (Zheng et al. 2024,
"Masked diffusion models are secretly time-agnostic masked models and exploit inaccurate
categorical sampling"), which lowers the effective temperature and with it the token
diversity. The ancestral sampler is run with both of its step draws
(``--precision-draws``): ``split``, an unmask test and then a K-way categorical (this
package's default), and ``joint``, MDLM's single draw over the K classes and the mask
(``_ddpm_update`` / ``_sample_categorical`` of kuleshov-group/mdlm; at float32 with
MDLM's float32 noise), the float32 baseline the paper measured: there each class also
races the mask entry, about ``T s`` times heavier on the step ``t -> s``. Reported: the
entropy (nats) of the generated atom types (molecules; bond orders too) or pixel levels
(images), with its bootstrap standard error, next to the training data's, the TV
distances, validity and uniqueness without correction (molecules), NFE and time. With
few categories (QM9: 4 atom types) the truncation only touches probabilities below
~1e-7 relative to the heaviest entry, so the effect can be within the noise; the table
shows the standard errors.

Part 3 (precision on a known distribution, no model). Draws from a categorical over
GPT-2's 50,257 tokens, one token at logit 0 and the rest 16 nats below it (tail mass
0.0056), with float64-grade and float32 noise: K-way Gumbel-max draws (the drawn tail
fraction and the mean ``-log p`` against their exact values), and one step of the joint
K + 1 draw at unmask probability ``--known-unmask`` (the unmasked fraction and the tail
fraction of the unmasked draws, also under the exact law of MDLM's float32 noise). This
isolates the numerical effect the paper describes, which a 4-token QM9 vocabulary barely
exposes (``--known-draws``, ``--no-known``).

``--only-precision`` runs parts 2 and 3 only and merges them into the result already in
``--out``: part 1 is kept, and so are part 2 rows and part 3 entries of the same
configuration (``--no-reuse`` re-samples them) and rows not asked for (:func:`main`).

Both recipes are supported (``mdm_qm9``, the default, and ``mdm_mnist``: one token per
pixel, FHS makes ``H * W = 784`` calls per batch). ``--checkpoint`` is ``pretrained``
(the recipe's shipped model), a training run folder, or ``init`` (a fresh
``init_model(PRNGKey(0))``: meaningless quality, correct speed and NFE). ``--quick``:
batch 16, ``T`` in (8, 32), one timed call, part 2 for the ancestral sampler only (each
sampler configuration is one XLA compile of about 10 s on a loaded 2-core CPU); for the
smoke test.

Writes JSON (default ``benchmarks/results/mdm.json``; meta with device, JAX version and
arguments), a PNG next to it (wall time vs NFE, quality vs NFE, entropy by precision) and
prints markdown tables.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from genmodels.domains.graphs import dense_to_pairs
from genmodels.metrics.crystals import entropy, total_variation
from genmodels.models.mdm import MDMMolecules
from genmodels.models.run import load_recipe_model
from genmodels.recipes import load_recipe

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "mdm.json"
#: default batch per recipe kind (``--batch`` overrides)
DEFAULT_BATCH = {"molecules": 256, "images": 64}
QUICK_BATCH, QUICK_STEPS = 16, [8, 32]
#: bootstrap resamples for the standard errors
BOOTSTRAP = 200


# ------------------------------------------------------------------------- loading


def load(recipe: str, checkpoint: str):
    """The recipe's config, method and model.

    Args:
      recipe: recipe name (``mdm_qm9`` or ``mdm_mnist``).
      checkpoint: ``pretrained``, a training run folder, or ``init`` (fresh parameters
        from ``method.init_model(PRNGKey(0))``).

    Returns:
      ``(config, method, model)``.

    Raises:
      SystemExit: ``pretrained`` where the recipe ships no pretrained model.
    """
    cfg, info = load_recipe(recipe)
    if checkpoint == "init":
        method = cfg.build()
        return cfg, method, method.init_model(jax.random.PRNGKey(0))
    if checkpoint == "pretrained" and not info.has_pretrained:
        raise SystemExit(
            f"recipe {recipe!r} ships no pretrained model (looked in {info.pretrained_dir}); "
            "pass --checkpoint RUN_DIR (a training run) or --checkpoint init"
        )
    path = info.pretrained_dir if checkpoint == "pretrained" else Path(checkpoint)
    method, model, _ = load_recipe_model(cfg, path)
    return cfg, method, model


def is_molecules(method) -> bool:
    """Whether the method samples molecules (else quantized images)."""
    return isinstance(method, MDMMolecules)


def token_capacity(method) -> int:
    """Token positions per sample: ``N + N (N - 1) / 2`` (molecules) or ``H * W``."""
    if is_molecules(method):
        n = method.max_atoms
        return n + n * (n - 1) // 2
    return method.config.height * method.config.width


# ---------------------------------------------------------------------- statistics


def reference_stats(method) -> dict[str, Any]:
    """Histograms and entropies of the training data's tokens.

    Returns:
      Molecules: ``atom_hist`` (atom-type frequencies over the atoms of the training
      split), ``bond_hist`` (bond orders none/single/double/triple over the node pairs of
      each molecule), ``token_entropy`` / ``bond_entropy`` (nats). Images: ``level_hist``
      over the training pixels and ``token_entropy``.
    """
    if is_molecules(method):
        data = method.task.data
        types, bonds = data.arrays(data.train_idx)  # [M, N] with -1 padding, [M, N, N]
        types = np.asarray(types)
        real = types >= 0
        atom = np.bincount(types[real], minlength=method.num_atom_types)
        pair_real = dense_to_pairs(real[:, :, None] & real[:, None, :])
        bond = np.bincount(dense_to_pairs(np.asarray(bonds))[pair_real], minlength=4)
        return {
            "atom_hist": (atom / atom.sum()).tolist(),
            "bond_hist": (bond / bond.sum()).tolist(),
            "token_entropy": entropy(atom),
            "bond_entropy": entropy(bond),
            "num_train": int(len(types)),
        }
    from genmodels.datasets.images import quantize

    levels = method.config.levels
    q = quantize(method.task.data[..., 0], levels)
    hist = np.bincount(q.ravel(), minlength=levels)
    return {
        "level_hist": (hist / hist.sum()).tolist(),
        "token_entropy": entropy(hist),
        "num_train": int(len(q)),
    }


def sample_counts(method, state, ctx) -> dict[str, np.ndarray]:
    """Per-sample token counts of one sampled batch.

    Args:
      method: the MDM method.
      state: the sampled token state.
      ctx: its context (molecules: ``node_mask`` and ``masks``; images: empty).

    Returns:
      ``{"token": [B, K]}`` (atom types or pixel levels) and, for molecules,
      ``{"bond": [B, 4]}``, counted over real (unpadded) positions only.
    """

    def counts(x: np.ndarray, real: np.ndarray, k: int) -> np.ndarray:
        b = x.shape[0]
        x = x.reshape(b, -1)
        real = real.reshape(b, -1)
        return np.stack([np.bincount(x[i][real[i]], minlength=k) for i in range(b)])

    if is_molecules(method):
        atoms = np.asarray(state["atoms"])
        bonds = np.asarray(state["bonds"])
        masks = ctx["masks"]
        return {
            "token": counts(atoms, np.asarray(masks["atoms"]) > 0, method.num_atom_types),
            "bond": counts(bonds, np.asarray(masks["bonds"]) > 0, 4),
        }
    img = np.asarray(state["image"])
    return {"token": counts(img, np.ones(img.shape, bool), method.config.levels)}


def _bootstrap_se(counts: np.ndarray, ref: np.ndarray | None, seed: int = 0):
    """Bootstrap standard errors (resampling samples) of the entropy and of the TV
    distance to ``ref`` of the pooled histogram of per-sample ``counts`` [S, K]."""
    rng = np.random.default_rng(seed)
    s = counts.shape[0]
    ents, tvs = [], []
    for _ in range(BOOTSTRAP):
        h = counts[rng.integers(0, s, s)].sum(0)
        if h.sum() == 0:
            continue
        ents.append(entropy(h))
        if ref is not None:
            tvs.append(total_variation(h, ref))
    ent_se = float(np.std(ents)) if len(ents) > 1 else 0.0
    tv_se = float(np.std(tvs)) if len(tvs) > 1 else 0.0
    return ent_se, tv_se


def quality(method, batches: list[tuple[Any, Any]], ref: dict[str, Any]) -> dict[str, Any]:
    """Quality and diversity figures of sampled batches.

    Args:
      method: the MDM method.
      batches: ``(state, ctx)`` host arrays of each sampled batch.
      ref: :func:`reference_stats`.

    Returns:
      ``token_tv`` (TV distance of the atom-type / pixel-level histogram to the training
      data's), ``token_entropy`` (nats), their bootstrap standard errors
      (``token_tv_se``, ``token_entropy_se``), ``num_samples``; for molecules also
      ``validity_wo_correction`` with its binomial standard error
      (``validity_wo_correction_se``), ``uniqueness_wo_correction`` (distinct canonical
      SMILES over the valid uncorrected ones), ``validity`` (after valency correction),
      ``bond_tv``, ``bond_entropy`` and ``bond_entropy_se``.
    """
    cnt = [sample_counts(method, st, ctx) for st, ctx in batches]
    tok = np.concatenate([c["token"] for c in cnt])
    ref_tok = np.asarray(ref["atom_hist"] if is_molecules(method) else ref["level_hist"])
    ent_se, tv_se = _bootstrap_se(tok, ref_tok)
    out: dict[str, Any] = {
        "num_samples": int(tok.shape[0]),
        "token_tv": total_variation(tok.sum(0), ref_tok),
        "token_tv_se": tv_se,
        "token_entropy": entropy(tok.sum(0)),
        "token_entropy_se": ent_se,
        "token_hist": (tok.sum(0) / tok.sum()).tolist(),
    }
    if is_molecules(method):
        from genmodels.metrics.molecules import uniqueness, validity

        smiles, raw = [], []
        for st, ctx in batches:
            s, r = method.decode_smiles(st, ctx)
            smiles += s
            raw += r
        bond = np.concatenate([c["bond"] for c in cnt])
        bond_se, _ = _bootstrap_se(bond, None)
        v = validity(raw)
        out.update(
            validity_wo_correction=v,
            validity_wo_correction_se=float(np.sqrt(v * (1.0 - v) / len(raw))),
            uniqueness_wo_correction=uniqueness(raw),
            validity=validity(smiles),
            bond_tv=total_variation(bond.sum(0), ref["bond_hist"]),
            bond_entropy=entropy(bond.sum(0)),
            bond_entropy_se=bond_se,
        )
    return out


# ------------------------------------------------------------------------ sampling


def with_draw(method, draw: str | None):
    """``method`` whose ancestral sampler makes the ``draw`` (``split`` or ``joint``; the
    recipe config's ``draw`` field, which the sampler registry reads); ``None``: as is."""
    if draw is None or method.config.draw == draw:
        return method
    out = copy.copy(method)  # shares the compiled-call cache, keyed by the options
    out.config = dataclasses.replace(method.config, draw=draw)
    return out


def sample_once(method, model, key, batch: int, sampler: str, steps: int, precision: str):
    """One jitted batch, blocked until ready.

    Returns:
      ``(state, ctx, nfe, max_tokens, seconds)``: host arrays, the NFE the sampler
      reports, the largest number of real tokens of a sample in the batch, wall time.
    """
    t0 = time.perf_counter()
    out = method.sample_states(model, key, batch, sampler=sampler, steps=steps, precision=precision)
    jax.block_until_ready(out)
    dt = time.perf_counter() - t0
    state, ctx, info = out
    if is_molecules(method):
        m = ctx["masks"]
        max_tokens = int(np.max(np.sum(m["atoms"], 1) + np.sum(m["bonds"], 1)))
    else:
        max_tokens = token_capacity(method)
    state, ctx = jax.device_get((state, ctx))
    return state, ctx, int(info["nfe"]), max_tokens, dt


def bench_sampler(
    method,
    model,
    key,
    batch: int,
    sampler: str,
    steps: int | None,
    precision: str,
    repeats: int,
    ref: dict[str, Any],
    draw: str | None = None,
) -> dict[str, Any]:
    """Time one sampler configuration and score its samples.

    The first call compiles; then ``repeats`` timed calls. Call ``i`` uses
    ``fold_in(key, i)``, so every configuration sees the same keys (and atom counts).

    Args:
      method, model: the MDM method and its model.
      key: base PRNG key.
      batch: samples per call.
      sampler: ``fhs`` or ``ancestral``.
      steps: ancestral steps ``T`` (``None`` for FHS).
      precision: ``float64`` or ``float32`` categorical draws.
      repeats: timed calls after the compiling one.
      ref: :func:`reference_stats`.
      draw: the ancestral step's draw, ``split`` (default) or ``joint`` (MDLM's K + 1-way
        draw); ``None`` for FHS.

    Returns:
      A row: ``sampler``, ``steps``, ``precision``, ``draw``, ``batch``, ``nfe`` (mean
      over all calls), ``nfe_runs`` and ``max_tokens_runs`` (per call, the compiling one
      first),
      ``sample_s`` (median timed call), ``sample_runs_s``, ``first_call_s``,
      ``compile_s`` (first call minus median), ``samples_per_s``, ``s_per_nfe`` and
      ``quality`` (:func:`quality` over the samples of all calls).
    """
    anc = sampler == "ancestral"
    draw = (draw or "split") if anc else None
    method = with_draw(method, draw)
    label = f"{sampler}" + (f" T={steps} {draw}" if anc else "") + f" {precision}"
    print(f"[mdm] {label} ...", file=sys.stderr, flush=True)
    nfes, toks, times, batches = [], [], [], []
    for i in range(repeats + 1):
        st, ctx, nfe, tok, dt = sample_once(
            method, model, jax.random.fold_in(key, i), batch, sampler, steps, precision
        )
        nfes.append(nfe)
        toks.append(tok)
        times.append(dt)
        batches.append((st, ctx))
    med = statistics.median(times[1:])
    nfe_mean = float(np.mean(nfes))
    return {
        "sampler": sampler,
        "steps": steps if sampler == "ancestral" else None,
        "precision": precision,
        "draw": draw,
        "batch": batch,
        "nfe": nfe_mean,
        "nfe_runs": nfes,
        "max_tokens_runs": toks,
        "sample_s": med,
        "sample_runs_s": times[1:],
        "first_call_s": times[0],
        "compile_s": max(times[0] - med, 0.0),
        "samples_per_s": batch / med,
        "s_per_nfe": med / max(nfe_mean, 1.0),
        "quality": quality(method, batches, ref),
    }


def match_quality(
    fhs: dict[str, Any],
    ancestral: list[dict[str, Any]],
    tv_tol: float,
    validity_tol: float,
) -> dict[str, Any]:
    """The ancestral ``T`` that matches FHS's quality, and FHS's speed-up over it.

    Rule: the smallest ``T`` with ``token_tv <= fhs.token_tv + tv_tol`` and (molecules)
    ``validity_wo_correction >= fhs.validity_wo_correction - validity_tol``.

    Args:
      fhs: the FHS row of :func:`bench_sampler`.
      ancestral: the ancestral rows (any order).
      tv_tol, validity_tol: the tolerances.

    Returns:
      ``rule`` (text), ``matched_steps`` (``None`` when no ``T`` matches),
      ``speedup_time`` (ancestral time / FHS time at the matched ``T``), ``nfe_ratio``
      (ancestral NFE / FHS NFE there), and ``per_steps``: the same two ratios and whether
      each ``T`` matches, for every ``T``.
    """
    fq = fhs["quality"]
    mol = "validity_wo_correction" in fq

    def ok(q: dict[str, Any]) -> bool:
        good = q["token_tv"] <= fq["token_tv"] + tv_tol
        if mol:
            good = (
                good and q["validity_wo_correction"] >= fq["validity_wo_correction"] - validity_tol
            )
        return bool(good)

    rule = f"smallest T with token_tv <= FHS token_tv + {tv_tol:g}"
    if mol:
        rule += f" and validity_wo_correction >= FHS's - {validity_tol:g}"
    per = []
    for r in sorted(ancestral, key=lambda r: r["steps"]):
        per.append(
            {
                "steps": r["steps"],
                "matches": ok(r["quality"]),
                "speedup_time": r["sample_s"] / fhs["sample_s"],
                "nfe_ratio": r["nfe"] / max(fhs["nfe"], 1.0),
            }
        )
    hit = next((p for p in per if p["matches"]), None)
    return {
        "rule": rule,
        "tv_tol": tv_tol,
        "validity_tol": validity_tol if mol else None,
        "matched_steps": hit["steps"] if hit else None,
        "speedup_time": hit["speedup_time"] if hit else None,
        "nfe_ratio": hit["nfe_ratio"] if hit else None,
        "per_steps": per,
    }


# -------------------------------------------------------------------------- output


def float32_race_law(w_tail: float, w_others: Sequence[float]) -> float:
    """Exact probability that an entry of weight ``w_tail`` wins MDLM's float32 race
    ``argmax w / E`` against entries of weights ``w_others`` (which win ties), from all
    2^24 equally likely values of its noise
    (:func:`genmodels.core.precision.exponential_from_bits_mdlm`)."""
    from genmodels.core.precision import exponential_from_bits_mdlm

    e = np.asarray(exponential_from_bits_mdlm(jnp.arange(1 << 24, dtype=jnp.uint32) << 8))
    scores = [np.sort(np.float32(w) / e) for w in w_others]  # [2^24] each
    b = np.float32(w_tail) / e
    b = b[b > max(sc[0] for sc in scores)]  # elsewhere the tail entry cannot win
    p = np.ones(b.shape)
    for sc in scores:
        p *= np.searchsorted(sc, b, side="left") / sc.size
    return float(p.sum() / e.size)


def _known_params(vocab, gap, draws, seed, unmask) -> dict[str, Any]:
    return {"vocab": vocab, "gap": gap, "draws": draws, "seed": seed, "unmask": unmask}


def known_distribution(
    vocab: int = 50257,
    gap: float = 16.0,
    draws: int = 1 << 14,
    seed: int = 0,
    chunk: int = 256,
    unmask: float = 0.2,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Part 3: float32 vs float64 draws from a categorical known in closed form.

    One token has logit 0 and the other ``vocab - 1`` logit ``-gap`` (GPT-2's vocabulary
    size and a gap of 16 by default), so the tail holds a mass of
    ``m = (V - 1) e^-gap / (1 + (V - 1) e^-gap)``.

    K-way draw (``float64``, ``float32``): Gumbel-max, the split ancestral sampler's
    category draw. A tail token wins only with noise above ``gap`` plus the top token's
    noise; float32 noise stops at 15.94 (:data:`genmodels.core.precision.FLOAT32_GUMBEL_MAX`),
    so the tail is under-drawn. The drawn tail fraction (binomial standard error) and the
    mean ``-log p`` of the draws (a Monte-Carlo estimate of the entropy when sampling is
    exact) are compared with the exact values.

    Joint draw (``joint``): one ancestral step of MDLM's K + 1-way draw
    (:func:`genmodels.samplers.masked.ancestral_update` with ``draw="joint"``) from an all
    masked state with unmask probability ``unmask`` (``m_t = 1``, ``m_s = 1 - unmask``;
    0.2 is the step ``5/T -> 4/T`` of a linear T-step grid): every tail class races the
    top class and the mask entry, ``(1 - unmask) / (unmask p_top)`` times heavier still.
    Reported per precision: the unmasked fraction (exact: ``unmask``) and the tail fraction
    of the unmasked draws (exact: ``m``); for float32 also that tail fraction under the
    exact law of MDLM's float32 noise (:func:`float32_race_law`, tail-tail races
    neglected).

    Args:
      vocab, gap: the categorical.
      draws: draws per form and precision.
      seed: PRNG seed.
      chunk: draws per jitted call.
      unmask: the joint step's unmask probability.
      previous: an earlier result; its entries with the same parameters are kept as they
        are (the draws are deterministic given the seed) and named in ``reused``.

    Returns:
      The parameters, ``tail_mass``, ``entropy``, ``float64`` / ``float32`` (K-way) and
      ``joint`` (``float64``, ``float32``, ``float32_law_tail_fraction``), ``reused``.
    """
    from genmodels.core.precision import categorical
    from genmodels.samplers.masked import ancestral_update

    logits = jnp.full((vocab,), -gap, jnp.float32).at[0].set(0.0)
    logp = np.asarray(jax.nn.log_softmax(logits.astype(jnp.float32)), np.float64)
    tail = float(-np.expm1(logp[0]))
    exact_h = float(-(np.exp(logp) * logp).sum())
    params = _known_params(vocab, gap, draws, seed, unmask)
    prev = previous or {}
    same = all(prev.get(k) == v for k, v in params.items() if k != "unmask")
    same_joint = same and prev.get("unmask", prev.get("joint", {}).get("unmask")) == unmask
    out: dict[str, Any] = {**params, "tail_mass": tail, "entropy": exact_h, "reused": []}
    keys = jax.random.split(jax.random.PRNGKey(seed), max(draws // chunk, 1))
    batch = jnp.broadcast_to(logits, (chunk, vocab))

    for precision, dt in (("float64", jnp.float64), ("float32", jnp.float32)):
        if same and precision in prev:
            out[precision] = prev[precision]
            out["reused"].append(precision)
            continue
        # the logits as an argument, not a constant XLA would fold at compile time
        fn = jax.jit(lambda k, lg, dt=dt: categorical(k, lg, precision=dt))
        t0 = time.perf_counter()
        idx = np.concatenate([np.asarray(fn(k, batch)) for k in keys])
        secs = time.perf_counter() - t0
        frac = float(np.mean(idx != 0))
        nll = -logp[idx]
        out[precision] = {
            "tail_fraction": frac,
            "tail_fraction_se": float(np.sqrt(max(frac * (1 - frac), 1e-12) / idx.size)),
            "entropy_estimate": float(nll.mean()),
            "entropy_estimate_se": float(nll.std(ddof=1) / np.sqrt(idx.size)),
            "seconds": secs,
        }

    joint: dict[str, Any] = {"unmask": unmask}
    p_top, p_tail = float(np.exp(logp[0])), float(np.exp(logp[1]))
    law = float32_race_law(unmask * p_tail, [unmask * p_top, 1.0 - unmask])
    joint["float32_law_tail_fraction"] = (vocab - 1) * law / unmask
    x0 = jnp.full((chunk,), vocab, jnp.int32)  # all masked
    for precision, dt in (("float64", jnp.float64), ("float32", jnp.float32)):
        if same_joint and precision in prev.get("joint", {}):
            joint[precision] = prev["joint"][precision]
            out["reused"].append(f"joint {precision}")
            continue
        fn = jax.jit(
            lambda k, x, lg, dt=dt: ancestral_update(
                k, x, lg, 1.0, 1.0 - unmask, mask_id=vocab, precision=dt, draw="joint"
            )
        )
        t0 = time.perf_counter()
        x = np.concatenate([np.asarray(fn(jax.random.fold_in(k, 1), x0, batch)) for k in keys])
        secs = time.perf_counter() - t0
        n_un = int(np.sum(x < vocab))
        frac = float(np.sum((x > 0) & (x < vocab)) / max(n_un, 1))
        joint[precision] = {
            "unmask_fraction": n_un / x.size,
            "unmask_fraction_se": float(np.sqrt(unmask * (1 - unmask) / x.size)),
            "tail_fraction": frac,
            "tail_fraction_se": float(np.sqrt(max(frac * (1 - frac), 1e-12) / max(n_un, 1))),
            "seconds": secs,
        }
    out["joint"] = joint
    return out


def _label(r: dict[str, Any], draw: bool = False) -> str:
    """``fhs`` or ``ancestral T=...`` (with ``draw``: and the step's draw)."""
    if r["sampler"] == "fhs":
        return "fhs"
    return f"ancestral T={r['steps']}" + (f" {r.get('draw') or 'split'}" if draw else "")


def _fmt(q: dict[str, Any], key: str, se: bool = True, digits: int = 4) -> str:
    """``value ± se`` of a quality figure, ``-`` where a row lacks it (rows kept from a
    result written before the figure was reported)."""
    if key not in q:
        return "-"
    v = f"{q[key]:.{digits}f}"
    return v + (f" ± {q[key + '_se']:.{digits}f}" if se and key + "_se" in q else "")


def markdown(result: dict[str, Any]) -> str:
    """The markdown tables of a result (part 1, the match, part 2)."""
    mol = result["meta"]["kind"] == "molecules"
    tok = "atom" if mol else "level"
    lines = [
        f"| sampler | NFE | time (s) | compile (s) | {'valid w/o corr. | ' if mol else ''}"
        f"{tok} TV | {tok} entropy (nats) |",
        "|---|---|---|---|---|---|" + ("---|" if mol else ""),
    ]
    for r in result["samplers"]:
        q = r["quality"]
        val = f"{q['validity_wo_correction']:.3f} | " if mol else ""
        lines.append(
            f"| {_label(r)} | {r['nfe']:.0f} | {r['sample_s']:.3f} | {r['compile_s']:.1f} | "
            f"{val}{q['token_tv']:.4f} ± {q['token_tv_se']:.4f} | "
            f"{q['token_entropy']:.4f} ± {q['token_entropy_se']:.4f} |"
        )
    m = result["match"]
    lines.append("")
    if m["matched_steps"] is None:
        lines.append(f"matching rule ({m['rule']}): no T matches FHS's quality")
    else:
        lines.append(
            f"matching rule ({m['rule']}): T = {m['matched_steps']}; FHS speed-up "
            f"(ancestral / FHS) {m['speedup_time']:.2f}x in time, "
            f"{m['nfe_ratio']:.2f}x in NFE"
        )
    ref = result["reference"]
    cols = [f"{tok} entropy (nats)", f"{tok} TV"]
    if mol:
        cols += ["bond entropy (nats)", "bond TV", "valid w/o corr.", "unique w/o corr."]
    lines += [
        "",
        "| sampler | draw | precision | NFE | time (s) | " + " | ".join(cols) + " |",
        "|---|---|---|---|---|" + "---|" * len(cols),
    ]
    for r in result["precision"]:
        q = r["quality"]
        vals = [_fmt(q, "token_entropy"), _fmt(q, "token_tv")]
        if mol:
            vals += [_fmt(q, "bond_entropy"), _fmt(q, "bond_tv", digits=4)]
            vals += [_fmt(q, "validity_wo_correction", digits=3)]
            vals += [_fmt(q, "uniqueness_wo_correction", digits=3)]
        lines.append(
            f"| {_label(r)} | {r.get('draw') or '-'} | {r['precision']} | {r['nfe']:.0f} | "
            f"{r['sample_s']:.1f} | " + " | ".join(vals) + " |"
        )
    ref_vals = [f"{ref['token_entropy']:.4f}", "0"]
    if mol:
        ref_vals += [f"{ref['bond_entropy']:.4f}", "0", "", ""]
    lines.append("| training data | | | | | " + " | ".join(ref_vals) + " |")
    kd = result.get("known_distribution")
    if kd:
        lines += [
            "",
            f"known categorical (V = {kd['vocab']}, tail gap {kd['gap']}, {kd['draws']} draws):",
            "",
            "| precision | tail fraction | entropy estimate (nats) |",
            "|---|---|---|",
            f"| exact | {kd['tail_mass']:.4f} | {kd['entropy']:.4f} |",
        ]
        for p in ("float64", "float32"):
            r = kd[p]
            lines.append(
                f"| {p} | {r['tail_fraction']:.4f} ± {r['tail_fraction_se']:.4f} | "
                f"{r['entropy_estimate']:.4f} ± {r['entropy_estimate_se']:.4f} |"
            )
        j = kd.get("joint")
        if j:
            lines += [
                "",
                f"joint K + 1 draw (MDLM), one step with unmask probability {j['unmask']:g}:",
                "",
                "| precision | unmasked fraction | tail fraction of the unmasked |",
                "|---|---|---|",
                f"| exact | {j['unmask']:.4f} | {kd['tail_mass']:.4f} |",
            ]
            for p in ("float64", "float32"):
                r = j[p]
                lines.append(
                    f"| {p} | {r['unmask_fraction']:.4f} ± {r['unmask_fraction_se']:.4f} | "
                    f"{r['tail_fraction']:.4f} ± {r['tail_fraction_se']:.4f} |"
                )
            lines.append(
                f"| float32, exact law of its noise | | {j['float32_law_tail_fraction']:.4f} |"
            )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """PNG: wall time vs NFE, quality vs NFE (ancestral per ``T``, FHS as a star) and
    the token entropy by precision (bars with bootstrap errors, training data dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    mol = result["meta"]["kind"] == "molecules"
    tok = "atom-type" if mol else "pixel-level"
    anc = sorted(
        (r for r in result["samplers"] if r["sampler"] == "ancestral"), key=lambda r: r["steps"]
    )
    fhs = next(r for r in result["samplers"] if r["sampler"] == "fhs")
    kd = result.get("known_distribution")
    fig, ax = plt.subplots(1, 4 if kd else 3, figsize=(20 if kd else 15, 4.2))

    a = ax[0]
    a.plot([r["nfe"] for r in anc], [r["sample_s"] for r in anc], "o-", label="ancestral")
    for r in anc:
        a.annotate(f"T={r['steps']}", (r["nfe"], r["sample_s"]), fontsize=8)
    a.plot([fhs["nfe"]], [fhs["sample_s"]], "r*", ms=14, label="first-hitting")
    a.set(xscale="log", yscale="log", xlabel="NFE", ylabel="wall time per batch (s)")
    a.set_title(f"batch {fhs['batch']}, float64 draws")
    a.legend()

    a = ax[1]
    a.errorbar(
        [r["nfe"] for r in anc],
        [r["quality"]["token_tv"] for r in anc],
        yerr=[r["quality"]["token_tv_se"] for r in anc],
        fmt="o-",
        label=f"ancestral {tok} TV",
    )
    a.errorbar(
        [fhs["nfe"]],
        [fhs["quality"]["token_tv"]],
        yerr=[fhs["quality"]["token_tv_se"]],
        fmt="r*",
        ms=14,
        label=f"FHS {tok} TV",
    )
    a.set(xscale="log", xlabel="NFE", ylabel=f"{tok} TV to training data")
    if mol:
        b = a.twinx()
        b.plot(
            [r["nfe"] for r in anc],
            [r["quality"]["validity_wo_correction"] for r in anc],
            "s--",
            color="tab:green",
            label="ancestral validity",
        )
        b.plot(
            [fhs["nfe"]],
            [fhs["quality"]["validity_wo_correction"]],
            "gP",
            ms=11,
            label="FHS validity",
        )
        b.set(ylabel="validity w/o correction", ylim=(0, 1.05))
        b.legend(loc="lower right", fontsize=8)
    a.legend(loc="upper right", fontsize=8)
    a.set_title("quality vs NFE")

    a = ax[2]
    rows = result["precision"]
    groups = list(dict.fromkeys(_label(r, draw=True) for r in rows))
    precs = ["float64", "float32"]
    w = 0.38
    for j, p in enumerate(precs):
        rs = [
            next((r for r in rows if _label(r, True) == g and r["precision"] == p), None)
            for g in groups
        ]
        xs = [i + (j - 0.5) * w for i, r in enumerate(rs) if r is not None]
        ys = [r["quality"]["token_entropy"] for r in rs if r is not None]
        es = [r["quality"]["token_entropy_se"] for r in rs if r is not None]
        a.bar(xs, ys, w, yerr=es, capsize=4, label=p)
    a.axhline(result["reference"]["token_entropy"], ls="--", c="k", label="training data")
    a.set_xticks(range(len(groups)), [g.replace(" T=", "\nT=") for g in groups], fontsize=8)
    a.set_xlim(-0.8, len(groups) - 0.2)
    ent = [r["quality"]["token_entropy"] for r in rows] + [result["reference"]["token_entropy"]]
    lo, hi = min(ent), max(ent)
    pad = max(hi - lo, 0.02)
    a.set_ylim(max(lo - pad, 0.0), hi + pad)
    a.set(ylabel=f"{tok} entropy (nats)")
    a.set_title("diversity by categorical precision")
    a.legend(fontsize=8)

    if kd:
        a = ax[3]
        forms = [("K-way draw", kd)]
        if kd.get("joint"):
            forms.append((f"joint K+1 draw\n(unmask {kd['joint']['unmask']:g})", kd["joint"]))
        colors = {"exact": "0.6", "float64": "tab:blue", "float32": "tab:orange"}
        top = 0.0
        for j, name in enumerate(colors):
            xs = [i + (j - 1) * 0.27 for i in range(len(forms))]
            ys = [
                kd["tail_mass"] if name == "exact" else f[name]["tail_fraction"] for _, f in forms
            ]
            es = [0.0 if name == "exact" else f[name]["tail_fraction_se"] for _, f in forms]
            a.bar(xs, ys, 0.27, yerr=es, capsize=4, color=colors[name], label=name)
            top = max([top] + [y + e for y, e in zip(ys, es)])
        a.set_ylim(0.0, 1.5 * top)  # room for the legend
        if kd.get("joint"):
            law = kd["joint"]["float32_law_tail_fraction"]
            a.plot([1 + 0.27], [law], "k_", ms=16, mew=2, label="float32 exact law")
        a.set_xticks(range(len(forms)), [f for f, _ in forms])
        a.set(ylabel="tail fraction of the drawn classes")
        a.set_title(f"known categorical: V={kd['vocab']}, tail {kd['gap']:g} nats down")
        a.legend(fontsize=8, loc="upper right")

    for a in ax[:2]:  # NFE as plain numbers at 1, 2, 5 x 10^k
        a.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        a.xaxis.set_major_formatter(ticker.ScalarFormatter())
        a.xaxis.set_minor_formatter(ticker.NullFormatter())
    fig.suptitle(
        f"{result['meta']['recipe']} ({result['meta']['checkpoint']}) on {result['meta']['device']}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options (see ``--help``); ``--quick`` overrides batch, steps, repeats."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--recipe", default="mdm_qm9", help="mdm_qm9 (default) or mdm_mnist")
    p.add_argument("--checkpoint", default="pretrained", help="pretrained, a run folder, or init")
    p.add_argument("--batch", type=int, default=None, help="default 256 (QM9), 64 (MNIST)")
    p.add_argument("--steps", type=int, nargs="+", default=[64, 256, 1000], help="ancestral T")
    p.add_argument(
        "--precision-steps", type=int, default=None, help="ancestral T of part 2 (max T)"
    )
    p.add_argument(
        "--precision-samplers",
        nargs="+",
        choices=["fhs", "ancestral"],
        default=["fhs", "ancestral"],
        help="samplers of part 2",
    )
    p.add_argument(
        "--precision-draws",
        nargs="+",
        choices=["split", "joint"],
        default=["split", "joint"],
        help="part 2: the ancestral step's draws (joint: MDLM's K + 1-way draw)",
    )
    p.add_argument(
        "--precisions",
        nargs="+",
        choices=["float64", "float32"],
        default=["float64", "float32"],
        help="part 2: categorical precisions",
    )
    p.add_argument(
        "--only-precision",
        action="store_true",
        help="run parts 2 and 3 only, merged into the result in --out (part 1 kept)",
    )
    p.add_argument(
        "--no-reuse",
        action="store_true",
        help="with --only-precision: re-sample part 2/3 entries --out already holds",
    )
    p.add_argument("--repeats", type=int, default=1, help="timed calls after the compiling one")
    p.add_argument("--tv-tol", type=float, default=0.01, help="matching rule: token TV slack")
    p.add_argument("--validity-tol", type=float, default=0.05, help="matching: validity slack")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quick", action="store_true", help="batch 16, T in (8, 32), part 2 ancestral only"
    )
    p.add_argument("--known-draws", type=int, default=1 << 14, help="part 3: draws per precision")
    p.add_argument(
        "--known-unmask", type=float, default=0.2, help="part 3: the joint step's unmask prob."
    )
    p.add_argument("--no-known", action="store_true", help="skip part 3")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON path (the PNG goes next to it)")
    p.add_argument("--plot", default=None, help="PNG path (default: --out with .png)")
    a = p.parse_args(list(argv))
    if a.quick:
        a.batch, a.steps, a.repeats = QUICK_BATCH, list(QUICK_STEPS), 1
        a.precision_samplers = ["ancestral"]
        a.known_draws = min(a.known_draws, 1024)
    if a.repeats < 1:
        p.error("--repeats must be at least 1")
    if not 0.0 < a.known_unmask < 1.0:
        p.error("--known-unmask must be in (0, 1)")
    a.steps = sorted(set(a.steps))
    if a.precision_steps is None:
        a.precision_steps = a.steps[-1]
    return a


def _row_key(r: dict[str, Any]) -> tuple:
    """A part 2 row's configuration; rows written before the draw was recorded made the
    split draw."""
    anc = r["sampler"] == "ancestral"
    return (r["sampler"], r["steps"], r["precision"], (r.get("draw") or "split") if anc else None)


def _with_draw_key(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "draw": _row_key(r)[3]}


def _previous(a: argparse.Namespace, out: Path) -> dict[str, Any] | None:
    """The result in ``out`` that ``--only-precision`` merges into (``None`` otherwise).

    Raises:
      SystemExit: no such file, or one of another recipe or checkpoint.
    """
    if not a.only_precision:
        return None
    if not out.exists():
        raise SystemExit(f"--only-precision merges into an earlier result; {out} does not exist")
    prev = json.loads(out.read_text())
    pm = prev["meta"]
    if (pm["recipe"], pm["checkpoint"]) != (a.recipe, a.checkpoint):
        raise SystemExit(
            f"{out} holds {pm['recipe']} ({pm['checkpoint']}), not {a.recipe} ({a.checkpoint})"
        )
    return prev


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables, write the JSON and the PNG.

    With ``--only-precision`` part 1 (``samplers``, ``match``) comes from the result in
    ``--out``, and so do part 2 rows and part 3 entries of the same configuration (batch,
    samples, seed; the draws are deterministic given the seed), unless ``--no-reuse``;
    rows of configurations not asked for are kept. ``meta["reused"]`` names what was
    kept, ``meta["part1"]`` the command that made part 1.

    Args:
      argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
      The JSON object written.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    out = Path(a.out)
    previous = _previous(a, out)
    t_start = time.perf_counter()
    _, method, model = load(a.recipe, a.checkpoint)
    kind = "molecules" if is_molecules(method) else "images"
    batch = a.batch or DEFAULT_BATCH[kind]
    ref = reference_stats(method)
    key = jax.random.PRNGKey(a.seed)

    def run(sampler, steps, precision, draw=None):
        return bench_sampler(
            method, model, key, batch, sampler, steps, precision, a.repeats, ref, draw
        )

    if previous is None:
        rows = [run("fhs", None, "float64")] + [run("ancestral", t, "float64") for t in a.steps]
        match = match_quality(rows[0], rows[1:], a.tv_tol, a.validity_tol)
        old_rows, old_seed = [], None
    else:
        rows, match = previous["samplers"], previous["match"]
        old_rows = [_with_draw_key(r) for r in previous["precision"]]
        old_seed = previous["meta"]["args"]["seed"]
    samples = batch * (a.repeats + 1)
    reused: list[str] = []
    prec_rows = []
    for sampler in a.precision_samplers:
        steps = a.precision_steps if sampler == "ancestral" else None
        for draw in a.precision_draws if sampler == "ancestral" else [None]:
            for precision in a.precisions:
                k = (sampler, steps, precision, draw)
                same = [r for r in rows if _row_key(r) == k]
                old = [
                    r
                    for r in old_rows
                    if _row_key(r) == k
                    and r["batch"] == batch
                    and r["quality"]["num_samples"] == samples
                    and old_seed == a.seed
                    and not a.no_reuse
                ]
                if same:
                    prec_rows.append(_with_draw_key(same[0]))
                elif old:
                    prec_rows.append(old[0])
                    reused.append(f"{_label(old[0], draw=True)} {precision}")
                else:
                    prec_rows.append(run(sampler, steps, precision, draw))
    asked = {_row_key(r) for r in prec_rows}
    prec_rows += [r for r in old_rows if _row_key(r) not in asked]
    order = {"fhs": 0, "ancestral": 1, None: 0, "split": 0, "joint": 1, "float64": 0, "float32": 1}
    prec_rows.sort(key=lambda r: (order[r["sampler"]], order[r["draw"]], order[r["precision"]]))
    old_known = (previous or {}).get("known_distribution")
    if a.no_known:
        known = old_known
    else:
        prev_known = None
        if old_known and not a.no_reuse:
            prev_known = {"seed": old_seed, **old_known}
        known = known_distribution(
            draws=a.known_draws, seed=a.seed, unmask=a.known_unmask, previous=prev_known
        )
        reused += [f"part 3 {r}" for r in known["reused"]]
    meta = {
        "device": str(jax.devices()[0]),
        "platform": jax.devices()[0].platform,
        "jax": jax.__version__,
        "args": vars(a),
        "command": " ".join(["python", "benchmarks/mdm.py", *argv]),
        "recipe": a.recipe,
        "checkpoint": a.checkpoint,
        "kind": kind,
        "batch": batch,
        "token_capacity": token_capacity(method),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "total_s": time.perf_counter() - t_start,
        "reused": reused,
    }
    if previous is not None:
        pm = previous["meta"]
        meta["part1"] = pm.get("part1") or {
            k: pm.get(k) for k in ("command", "args", "total_s", "loadavg", "device", "jax")
        }
    result = {
        "benchmark": "mdm",
        "meta": meta,
        "reference": ref,
        "samplers": rows,
        "match": match,
        "precision": prec_rows,
        "known_distribution": known,
    }
    png = Path(a.plot) if a.plot else out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, png)
    print(
        f"\n{a.recipe} ({a.checkpoint}) on {meta['device']}, batch {batch}, "
        f"{token_capacity(method)} token positions per sample, median of {a.repeats} "
        f"timed call(s); ± bootstrap standard errors.\n"
    )
    print(markdown(result))
    print(f"\nwrote {out} and {png}")
    return result


if __name__ == "__main__":
    main()
    raise SystemExit(0)
