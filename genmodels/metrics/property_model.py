"""The property model that scores generated crystals (CDVAE's ``prop_models``).

CDVAE (Xie et al., ICLR 2022, Sec. 5; txie-93/cdvae ``scripts/eval_utils.py``
``prop_model_eval``) predicts the dataset property of crystals with a GNN trained
separately on the same dataset (``cdvae/prop_models/<dataset>``: DimeNet++ with one output,
mean readout, MSE on the standardized property, Adam 1e-3), and uses it for the property
Wasserstein distance ``wdist_prop`` of generated crystals and for the success rates of
property optimisation. Here the network is :class:`~genmodels.nets.property.PropertyNet`
(the periodic encoder and a ReLU head), trained by the generic engine
(:func:`genmodels.train.train`) on MSE of the standardized property.

A saved model is a folder holding ``weights.npz`` (float32 parameters by path) and
``property_model.json`` (the network sizes, the property's training mean and standard
deviation, the dataset and how it was trained). The model of a benchmark ships with its
CDVAE recipe's pretrained model, ``recipes/pretrained/<recipe>/property_model``
(:data:`SHIPPED_RECIPES`; nothing is downloaded).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from pymatgen.core import Structure

from genmodels.datasets.crystals import CRYSTAL_DATASETS, load_crystals
from genmodels.datasets.registry import DatasetError
from genmodels.domains.crystals import CrystalArrays, CrystalDomain
from genmodels.errors import DataError, MissingFileError
from genmodels.nets.property import PropertyNet, PropertyNetConfig
from genmodels.train.config import OptimConfig, TrainConfig

__all__ = [
    "PropertyModel",
    "load_property_model",
    "padded_arrays",
    "property_inputs",
    "property_mae",
    "save_property_model",
    "shipped_property_model",
    "shipped_property_model_dir",
    "train_property_model",
]

#: file names inside a property-model folder
WEIGHTS, RECORD = "weights.npz", "property_model.json"
#: benchmark -> the CDVAE recipe whose pretrained folder ships its property model
SHIPPED_RECIPES = {"perov_5": "cdvae_perov5", "carbon_24": "cdvae_carbon24", "mp_20": "cdvae_mp20"}
#: added to the property's standard deviation (CDVAE's scaler adds 1e-5 likewise)
STD_EPS = 1e-5


def padded_arrays(arrays: CrystalArrays, num_types: int = 100) -> dict[str, np.ndarray]:
    """Padded host arrays of flat crystals, ``N`` their largest atom count.

    Args:
      arrays: canonical flat crystals.
      num_types: atom classes (class ``k`` is atomic number ``k + 1``).

    Returns:
      ``types`` [M, N] int32, ``frac`` [M, N, 3], ``lattice`` [M, 6], ``node_mask`` [M, N].
    """
    n = max(int(np.max(arrays.num_atoms)), 1)
    state, ctx = CrystalDomain(n, num_types, one_hot_types=False).encode_arrays(arrays)
    return {
        "types": np.asarray(state["types"], np.int32),
        "frac": np.asarray(state["frac"], np.float32),
        "lattice": np.asarray(state["lattice"], np.float32),
        "node_mask": np.asarray(ctx["node_mask"], np.float32),
    }


@nnx.jit
def _apply(net: PropertyNet, types, frac, lattice, node_mask):
    return net(types, frac, lattice, node_mask)  # [B]


@dataclass
class PropertyModel:
    """A trained property regressor and the statistics that unscale its output.

    Attributes:
      net: the network (predicts ``(y - mean) / std``).
      config: its sizes.
      mean, std: the training property's mean and standard deviation (+ ``STD_EPS``).
      record: dataset, property column and how it was trained (saved with it).
    """

    net: PropertyNet
    config: PropertyNetConfig
    mean: float
    std: float
    record: dict[str, Any] = field(default_factory=dict)

    def predict_arrays(self, a: dict[str, np.ndarray], batch_size: int = 256) -> np.ndarray:
        """The property (data units) of padded crystals (:func:`padded_arrays`).

        Batches are padded to ``batch_size`` rows, so one program serves every batch.

        Returns:
          float64 [M].
        """
        m = len(a["types"])
        bs = max(min(batch_size, m), 1)
        keys = ("types", "frac", "lattice", "node_mask")
        out = []
        for i in range(0, m, bs):
            idx = np.arange(i, i + bs) % m  # the last batch wraps around, then is cut
            y = _apply(self.net, *(jnp.asarray(a[k][idx]) for k in keys))
            out.append(np.asarray(y, np.float64)[: min(bs, m - i)])
        y = np.concatenate(out) if out else np.zeros((0,))
        return y * self.std + self.mean

    def predict(self, structures: Sequence[Structure | None], batch_size: int = 256) -> np.ndarray:
        """The property of crystals, each put in CDVAE's canonical (Niggli) cell first, as
        the reference's ``TensorCrystDataset`` does.

        Args:
          structures: crystals; ``None`` (a failed decode) gets NaN.
          batch_size: crystals per jitted call.

        Returns:
          float64 [len(structures)].
        """
        out = np.full((len(structures),), np.nan)
        keep = [i for i, s in enumerate(structures) if s is not None and len(s)]
        if keep:
            flat = CrystalArrays.from_structures([structures[i] for i in keep])
            out[keep] = self.predict_arrays(padded_arrays(flat, self.config.num_types), batch_size)
        return out


def _split_data(dataset: str, split: str, limit: int | None) -> tuple[dict, np.ndarray]:
    """Padded arrays and raw property of a benchmark split's crystals with a property."""
    ds = load_crystals(dataset, split, limit=limit)
    ok = np.flatnonzero(np.isfinite(ds.properties))
    if ok.size == 0:
        raise DataError(f"{dataset} {split}: no crystal has a {CRYSTAL_DATASETS[dataset]} value")
    return padded_arrays(ds.arrays.select(ok)), np.asarray(ds.properties[ok], np.float64)


def _train_split(dataset: str, split: str | None, limit: int | None):
    """``(split, arrays, property)``: ``split``, or ``train`` when present, else ``val``."""
    if split is not None:
        return (split, *_split_data(dataset, split, limit))
    try:
        return ("train", *_split_data(dataset, "train", limit))
    except DatasetError as e:
        warnings.warn(f"{dataset}: no train split ({e}); training on val", stacklevel=3)
        return ("val", *_split_data(dataset, "val", limit))


def _mse(net: PropertyNet, batch: dict, key: jax.Array) -> tuple[jax.Array, dict]:
    """MSE of the standardized property (the reference's ``F.mse_loss(preds, batch.y)``)."""
    del key
    err = net(batch["types"], batch["frac"], batch["lattice"], batch["node_mask"]) - batch["y"]
    return jnp.mean(err**2), {"mae_std": jnp.mean(jnp.abs(err))}


def train_property_model(
    dataset: str,
    *,
    split: str | None = None,
    config: PropertyNetConfig = PropertyNetConfig(),
    train_cfg: TrainConfig = TrainConfig(steps=3500, batch_size=64, ema_decay=0.0),
    optim_cfg: OptimConfig = OptimConfig(lr=1e-3, schedule="cosine", final_lr_frac=0.05),
    workdir: str | Path | None = None,
    limit: int | None = None,
) -> PropertyModel:
    """Train a property model on a benchmark split with :func:`genmodels.train.train`.

    Args:
      dataset: ``perov_5``, ``carbon_24`` or ``mp_20`` (property :data:`CRYSTAL_DATASETS`).
      split: the split trained on (default ``train``, else ``val`` with a warning: this
        project has no perov_5 / carbon_24 train split).
      config: network sizes.
      train_cfg, optim_cfg: the engine's settings (EMA off: the reference keeps none).
      workdir: run folder (checkpoints, ``metrics.jsonl``; resumed), or ``None``.
      limit: read only the first rows of the split (tests).

    Returns:
      The trained :class:`PropertyModel` (its record names the split and steps).
    """
    from genmodels.train import ArrayLoader, train

    split, a, prop = _train_split(dataset, split, limit)
    mean, std = float(prop.mean()), float(prop.std() + STD_EPS)
    arrays = {**a, "y": ((prop - mean) / std).astype(np.float32)}
    loader = ArrayLoader(arrays, min(train_cfg.batch_size, len(prop)), seed=train_cfg.seed)
    net = config.make(rngs=nnx.Rngs(train_cfg.seed))
    cfg = dataclasses.replace(train_cfg, batch_size=loader.batch_size)
    res = train(net, _mse, loader, cfg, optim_cfg, workdir, recipe=f"property_model_{dataset}")
    record = {
        "dataset": dataset,
        "property": CRYSTAL_DATASETS[dataset],
        "train_split": split,
        "num_train": len(prop),
        "steps": res.step,
        "batch_size": loader.batch_size,
        "optim": dataclasses.asdict(optim_cfg),
    }
    return PropertyModel(res.model, config, mean, std, record)


def property_mae(
    model: PropertyModel, dataset: str, split: str = "test", *, limit: int | None = None
) -> dict[str, float]:
    """Test error of a property model against predicting its training mean.

    Args:
      model: the property model; dataset: its benchmark; split: the split scored.
      limit: score only the split's first rows.

    Returns:
      ``{"mae", "mae_mean_baseline", "num"}`` on ``split``'s crystals with a property.
    """
    a, prop = _split_data(dataset, split, limit)
    pred = model.predict_arrays(a)
    return {
        "mae": float(np.mean(np.abs(pred - prop))),
        "mae_mean_baseline": float(np.mean(np.abs(model.mean - prop))),
        "num": float(len(prop)),
    }


def save_property_model(model: PropertyModel, folder: str | Path) -> Path:
    """Write ``weights.npz`` and ``property_model.json`` into ``folder`` (created).

    Returns:
      The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pure = nnx.to_pure_dict(nnx.state(model.net, nnx.Param))
    leaves = jax.tree_util.tree_leaves_with_path(pure)
    flat = {jax.tree_util.keystr(p, simple=True, separator="/"): v for p, v in leaves}
    np.savez_compressed(folder / WEIGHTS, **{k: np.asarray(v, np.float32) for k, v in flat.items()})
    record = {
        **model.record,
        "config": dataclasses.asdict(model.config),
        "mean": model.mean,
        "std": model.std,
    }
    (folder / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return folder


def load_property_model(folder: str | Path) -> PropertyModel:
    """The model :func:`save_property_model` wrote to ``folder``.

    Raises:
      MissingFileError: the folder lacks ``weights.npz`` or ``property_model.json``.
      DataError: the weights do not fit the recorded sizes.
    """
    folder = Path(folder)
    missing = [f for f in (WEIGHTS, RECORD) if not (folder / f).is_file()]
    if missing:
        raise MissingFileError(f"property model folder {folder} lacks {', '.join(missing)}")
    record = json.loads((folder / RECORD).read_text())
    config = PropertyNetConfig(**record.pop("config"))
    mean, std = float(record.pop("mean")), float(record.pop("std"))
    net = config.make(rngs=nnx.Rngs(0))
    state = nnx.state(net, nnx.Param)
    paths, treedef = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(state))
    with np.load(folder / WEIGHTS) as z:
        leaves = []
        for p, v in paths:
            k = jax.tree_util.keystr(p, simple=True, separator="/")
            if k not in z.files or z[k].shape != np.shape(v):
                raise DataError(f"{folder / WEIGHTS}: {k} is missing or has another shape")
            leaves.append(jnp.asarray(z[k]))
    nnx.replace_by_pure_dict(state, jax.tree_util.tree_unflatten(treedef, leaves))
    nnx.update(net, state)
    return PropertyModel(net, config, mean, std, record)


def shipped_property_model_dir(dataset: str) -> Path | None:
    """``recipes/pretrained/<recipe>/property_model`` of a benchmark, if it is there."""
    from genmodels.recipes import packaged_recipes_dir

    root, recipe = packaged_recipes_dir(), SHIPPED_RECIPES.get(dataset)
    if root is None or recipe is None:
        return None
    folder = root / "pretrained" / recipe / "property_model"
    return folder if (folder / RECORD).is_file() else None


@functools.cache
def shipped_property_model(dataset: str) -> PropertyModel | None:
    """The property model shipped for ``dataset``; ``None``, with one warning per dataset
    and process, when there is none (metrics that need it are then left out)."""
    folder = shipped_property_model_dir(dataset)
    if folder is None:
        warnings.warn(
            f"no property model ships for dataset {dataset!r}, so prop_wdist is left out "
            f"(train one: python benchmarks/property_model.py DATASET --out FOLDER)",
            stacklevel=2,
        )
        return None
    return load_property_model(folder)


def property_inputs(dataset: str, reference: CrystalArrays) -> dict[str, Any]:
    """The ``property_fn`` and ``test_properties`` arguments of
    :func:`~genmodels.metrics.crystals.generation_metrics` from the model shipped for
    ``dataset`` (no arguments, after one warning, when none ships).

    Args:
      dataset: a benchmark name (any other name has no shipped model).
      reference: the reference split's canonical crystals (predicted once here).
    """
    model = shipped_property_model(dataset)
    if model is None:
        return {}
    ref = model.predict_arrays(padded_arrays(reference, model.config.num_types))
    return {"property_fn": model.predict, "test_properties": ref}
