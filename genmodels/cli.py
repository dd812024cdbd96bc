"""The ``genmodels`` command: ``recipes | train | sample | evaluate | export | samplers |
optimize``.

    genmodels recipes
    genmodels train RECIPE [--workdir DIR] [config overrides, e.g. --train.steps 500]
    genmodels sample RECIPE --checkpoint DIR|pretrained --num N --out FILE
                     [--sampler NAME] [--steps K] [--seed S] [--no-correction]
    genmodels evaluate RECIPE --samples FILE [--split test]
    genmodels export RECIPE --checkpoint DIR [--out DIR] [--overwrite]
    genmodels samplers RECIPE                 # the samplers this recipe can use
    genmodels boss-grids RECIPE --checkpoint DIR|pretrained   # BOSS step grids
    genmodels optimize RECIPE --checkpoint DIR [--num-starts 100 --steps 5000 --lr 1e-3
                       --saved 10 --out DIR]   # CDVAE property optimisation, SR5/10/15

Options for every command: --debug (or GENMODELS_DEBUG=1) shows the Python traceback of
an error; --recipes-dir DIR also looks for recipes in DIR (as GENMODELS_RECIPES_DIR does);
--coordinator HOST:PORT --num-processes N --process-id I join a multi-process run
(jax.distributed; found without options under SLURM, Open MPI, a TPU pod or a Kubernetes
JobSet): train and sample then span every process's devices, process 0 writes.

`genmodels COMMAND RECIPE --help` lists the command's options first, then the recipe's
config fields (``--train.steps`` for train, ``--config.FIELD`` for the others). Boolean
options are flags (--no-correction, --train.no-progress) and also take True/False.
Exit codes: 0 done, 1 a data or file error, 2 a usage error, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import sys
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Any

import tyro

from genmodels.errors import GenmodelsError, MissingFileError, UsageError
from genmodels.recipes import RecipeError, list_recipes, load_recipe

COMMANDS = (
    "recipes", "train", "sample", "evaluate", "export", "samplers", "boss-grids", "optimize",
)  # fmt: skip
USAGE = __doc__
#: sample-file suffixes of all recipes: an ``--out`` with another recipe's suffix is an error
KNOWN_SUFFIXES = (".smi", ".g6", ".cif", ".npz", ".txt", ".csv")


class _Exit(Exception):
    """Stop a command with this exit code (its message is already printed)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


# ------------------------------------------------------------------ option parsing


def _opt(
    name: str, typ: Any, default: Any, help: str, *, choices=None, hint: str | None = None
) -> tuple[str, Any, Any]:
    """One command option: ``(name, Annotated[type, help], default)``; ``choices`` are
    shown as its metavar, ``hint`` replaces tyro's ``(default: ...)``."""
    meta = "{" + ",".join(choices) + "}" if choices else ("INT" if typ == int | None else None)
    arg = tyro.conf.arg(help=help, metavar=meta, help_behavior_hint=hint)
    return name, Annotated[typ, arg], default


def _hide_training(cfg: Any) -> Any:
    """``cfg`` as an instance of a subclass whose training and optimiser fields are
    hidden from tyro (they cannot matter for sampling or evaluation)."""
    from genmodels.train.config import OptimConfig, TrainConfig

    hidden = [
        (f.name, tyro.conf.Suppress[type(v)], dataclasses.field(default=v))
        for f in dataclasses.fields(cfg)
        if isinstance(v := getattr(cfg, f.name), TrainConfig | OptimConfig)
    ]
    if not hidden:
        return cfg
    sub = dataclasses.make_dataclass(type(cfg).__name__, hidden, bases=(type(cfg),), frozen=True)
    sub.__doc__ = type(cfg).__doc__
    return sub(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.init})


def _plain(cfg: Any, original: type) -> Any:
    """A parsed config of a :func:`_hide_training` subclass back as the recipe's class."""
    if type(cfg) is original:
        return cfg
    return original(
        **{f.name: getattr(cfg, f.name) for f in dataclasses.fields(original) if f.init}
    )


def _command_type(name: str, cfg: Any, fields: list, doc: str, flatten: bool):
    """A dataclass with the command's own fields, then the recipe config (flattened for
    ``train``: ``--train.steps``; under ``--config.`` for the others)."""
    spec = [(n, t, dataclasses.field(default=d)) for n, t, d in fields]
    ctype = Annotated[type(cfg), tyro.conf.arg(name="")] if flatten else type(cfg)
    spec.append(("config", ctype, dataclasses.field(default=cfg)))
    cls = dataclasses.make_dataclass(name, spec, frozen=True)
    cls.__doc__ = doc
    return cls


_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _bool_flags(cls: type, prefix: str = "") -> dict[str, tuple[str, str]]:
    """``{flag: (on, off)}`` of every boolean field of ``cls`` (nested dataclasses under
    ``prefix``), both spellings of each flag as keys."""
    import typing

    out: dict[str, tuple[str, str]] = {}
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        typ = hints.get(f.name)
        while typing.get_origin(typ) is Annotated:
            typ = typing.get_args(typ)[0]
        name = f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        if typ is bool:
            on, off = f"--{prefix}{name}", f"--{prefix}no-{name}"
            out[on] = out[off] = (on, off)
        elif dataclasses.is_dataclass(typ):
            sub = "" if f.name == "config" and prefix == "" and _flat(cls) else f"{prefix}{name}."
            out.update(_bool_flags(type(default) if default is not None else typ, sub))
    return out


def _flat(cls: type) -> bool:
    return getattr(cls, "_flat_config", False)


def _rewrite_bools(cls: type, args: list[str]) -> list[str]:
    """Accept ``--flag True|False`` (and ``--flag=False``) next to tyro's bare flags: the
    value picks the flag or its ``--no-`` twin (``--no-correction True`` = ``--no-correction``)."""
    flags = _bool_flags(cls)
    out, i = [], 0
    while i < len(args):
        a, value = args[i], None
        if "=" in a and a.split("=", 1)[0] in flags:
            a, value = a.split("=", 1)
        elif a in flags and i + 1 < len(args) and args[i + 1].lower() in _TRUE | _FALSE:
            value = args[i + 1]
            i += 1
        if value is not None:
            on, off = flags[a]
            if value.lower() not in _TRUE | _FALSE:
                raise UsageError(f"{a} takes no value (or True/False), got {value!r}")
            positive = (a == on) == (value.lower() in _TRUE)
            a = on if positive else off
        out.append(a)
        i += 1
    return out


_BOX = re.compile(r"[│╭╰╮╯─]+")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tyro_message(text: str) -> str:
    """The first paragraph of a tyro error box, as one line."""
    lines, seen_title = [], False
    for raw in _ANSI.sub("", text).splitlines():
        if raw.strip().startswith("╭"):
            seen_title = True
            continue
        line = _BOX.sub(" ", raw).strip()
        if not line:
            if lines and seen_title and set(raw.strip()) <= set("│─ "):
                break  # the rule under the message
            continue
        if line.startswith(("For full helptext", "usage:")):
            break
        lines.append(line)
    return " ".join(lines) or "invalid arguments"


def _parse(prog: str, cls, args: list[str]):
    """tyro's parse of ``args`` into ``cls``; its error boxes become one-line
    :class:`UsageError`, ``--help`` prints and exits 0."""
    args = _rewrite_bools(cls, args)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return tyro.cli(cls, args=args, prog=prog)
    except SystemExit as e:
        if not e.code:
            raise _Exit(0) from None
        raise UsageError(f"{_tyro_message(err.getvalue())} (see {prog} --help)") from None


def _need_recipe(cmd: str, args: list[str]) -> tuple[str, list[str]]:
    """``(RECIPE, rest)`` of ``genmodels CMD RECIPE ...``; prints the usage and raises
    :class:`_Exit` (0 for ``--help``, 2 otherwise) when the recipe is missing."""
    if not args or args[0].startswith("-"):
        names = ", ".join(sorted(list_recipes()))
        stream = sys.stdout if any(a in ("-h", "--help") for a in args) else sys.stderr
        print(
            f"usage: genmodels {cmd} RECIPE [options]   (genmodels {cmd} RECIPE --help for all options)",
            file=stream,
        )
        print(f"recipes: {names}", file=stream)
        raise _Exit(0 if stream is sys.stdout else 2)
    return args[0], args[1:]


def _recipe_command(
    cmd: str,
    args: list[str],
    fields: list,
    doc: str,
    *,
    flatten: bool = False,
    hide: bool = True,
    trained: bool = False,
):
    """``(name, info, parsed)`` of ``genmodels CMD RECIPE [options]``: the recipe loaded
    and the command's options (plus the config's) parsed by tyro. ``doc`` may use
    ``{name}`` and ``{pretrained}``; ``fields`` may be a function of the config."""
    name, rest = _need_recipe(cmd, args)
    cfg, info = load_recipe(name)
    if trained:
        cfg = _trained_config(cfg, rest)
    original = type(cfg)
    shown = _hide_training(cfg) if hide else cfg
    own = fields(cfg) if callable(fields) else fields
    text = doc.format(name=name, pretrained=info.pretrained_dir)
    cls = _command_type(cmd.replace("-", "_").title(), shown, own, text, flatten)
    cls._flat_config = flatten
    parsed = _parse(f"genmodels {cmd} {name}", cls, _data_aliases(rest, cfg, flatten))
    return name, info, dataclasses.replace(parsed, config=_plain(parsed.config, original))


# ------------------------------------------------------------------ a user's data

#: short options of a user data file (``genmodels.datasets.user.UserData`` fields)
DATA_ALIASES = (
    "test-fraction", "split-seed", "train-file", "test-file", "smiles-column", "max-atoms",
    "property",
)  # fmt: skip


def _fields(cfg: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(cfg)}


def _data_aliases(args: list[str], cfg: Any, flatten: bool) -> list[str]:
    """``--test-fraction X`` -> ``--data.test-fraction X`` (``--config.data.`` and
    ``--dataset`` -> ``--config.dataset`` where the config is not flattened)."""
    prefix = "" if flatten else "config."
    out = []
    for a in args:
        name, eq, value = a.partition("=")
        if "data" in _fields(cfg) and name.startswith("--") and name[2:] in DATA_ALIASES:
            name = f"--{prefix}data.{name[2:]}"
        elif name == "--dataset" and not flatten and "dataset" in _fields(cfg):
            name = "--config.dataset"
        out.append(name + eq + value)
    return out


def _absolute_data(cfg: Any) -> Any:
    """A user data path (and train/test files) made absolute, so the checkpoint that
    stores it works from any folder."""
    from genmodels.datasets.user import is_user_path

    if "dataset" not in _fields(cfg) or not is_user_path(cfg.dataset):
        return cfg
    data = cfg.data
    files = {
        k: str(Path(v).resolve()) for k in ("train_file", "test_file") if (v := getattr(data, k))
    }
    return dataclasses.replace(
        cfg, dataset=str(Path(cfg.dataset).resolve()), data=dataclasses.replace(data, **files)
    )


def _from_json(template: Any, stored: Any) -> Any:
    """``template`` (a config value) with the values of its JSON form ``stored``
    (:func:`genmodels.train.checkpoint.config_json`); values JSON cannot hold keep the
    template's."""
    if dataclasses.is_dataclass(template) and isinstance(stored, dict):
        if stored.get("__class__", type(template).__qualname__) != type(template).__qualname__:
            return template
        new = {
            f.name: _from_json(getattr(template, f.name), stored[f.name])
            for f in dataclasses.fields(template)
            if f.init and f.name in stored
        }
        return dataclasses.replace(template, **new)
    if isinstance(template, tuple) and isinstance(stored, list):
        return (
            tuple(_from_json(t, v) for t, v in zip(template, stored, strict=False))
            if (len(template) == len(stored) and any(dataclasses.is_dataclass(t) for t in template))
            else tuple(stored)
        )
    if stored is None or isinstance(stored, bool | int | float) and not isinstance(template, str):
        return stored
    if isinstance(stored, str) and (template is None or isinstance(template, str)):
        return stored
    return template


def _trained_config(cfg: Any, args: list[str]) -> Any:
    """The config a training run was trained with (its data, network and settings), when
    ``args`` hold ``--checkpoint RUN``: sampling and evaluating then need only the
    checkpoint; options in ``args`` still override it. Any other case: ``cfg``."""
    from genmodels.train.checkpoint import Checkpointer

    folder = None
    for i, a in enumerate(args):
        if a.startswith("--checkpoint="):
            folder = a.split("=", 1)[1]
        elif a == "--checkpoint" and i + 1 < len(args):
            folder = args[i + 1]
    if folder in (None, "pretrained") or not Path(folder).is_dir():
        return cfg
    ckpt = Path(folder) / "checkpoints" if (Path(folder) / "checkpoints").is_dir() else Path(folder)
    try:
        stored = Checkpointer(ckpt, read_only=True).read_meta().get("config")
    except Exception:  # noqa: BLE001 - loading the checkpoint reports what is wrong
        return cfg
    if not isinstance(stored, dict):
        return cfg
    from genmodels.datasets.user import resolve_run_data

    return resolve_run_data(_from_json(cfg, stored), folder)  # the run's copy of its data


# ------------------------------------------------------------------ checks


def _check_positive(**values: int | None) -> None:
    for k, v in values.items():
        if v is not None and v < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be at least 1, got {v}")


def _check_out(out: str, suffix: str, name: str) -> Path:
    """The sample file to write: ``out`` with the recipe's suffix added when it has
    none; its folder created and checked to be writable (before any sampling)."""
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"--out {path} is a folder; give a file name ending in {suffix}")
    if path.suffix.lower() in KNOWN_SUFFIXES and path.suffix.lower() != suffix:
        raise UsageError(
            f"--out {out}: recipe {name!r} writes {suffix} files, not {path.suffix}; "
            f"use --out {path.with_suffix(suffix)}"
        )
    if path.suffix.lower() != suffix:
        path = path.with_name(path.name + suffix)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".genmodels-write-test-"):
            pass
    except OSError as e:
        raise UsageError(
            f"cannot write to {path.parent} ({e.strerror or e}); choose another --out"
        ) from None
    return path


def _checkpoint(info, checkpoint: str) -> Path:
    """The checkpoint folder of ``--checkpoint`` (the shipped one for ``pretrained``)."""
    from genmodels.models.run import resolve_checkpoint

    try:
        return resolve_checkpoint(info, checkpoint)
    except FileNotFoundError as e:
        raise MissingFileError(str(e)) from None


# ------------------------------------------------------------------ commands


def cmd_recipes(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(
            "usage: genmodels recipes\n\nList the recipes, where each comes from, and "
            "whether a pretrained model ships with it."
        )
        return 0
    if args:
        raise UsageError(f"genmodels recipes takes no arguments, got {' '.join(args)}")
    recipes = list_recipes()
    if not recipes:
        print("no recipes found; pass --recipes-dir DIR", file=sys.stderr)
        return 1
    width = max(len(n) for n in recipes)
    for name, info in sorted(recipes.items()):
        tag = "[pretrained]" if info.has_pretrained else "            "
        where = "" if info.source == "package" else f"  ({info.source}: {info.path.parent})"
        print(f"{name:<{width}}  {tag}  {info.description}{where}")
    return 0


def cmd_train(args: list[str]) -> int:
    name, _, parsed = _recipe_command(
        "train",
        args,
        [
            _opt(
                "workdir",
                str | None,
                None,
                "run folder (default runs/RECIPE); resumed if it holds checkpoints",
            )
        ],
        "Train recipe {name!r} (resumes from WORKDIR's latest intact checkpoint).",
        flatten=True,
        hide=False,
    )
    from genmodels.models.run import train_recipe

    workdir = Path(parsed.workdir or f"runs/{name}")
    train_recipe(_absolute_data(parsed.config), workdir, recipe=name)
    print(f"checkpoints in {workdir / 'checkpoints'}; log in {workdir / 'metrics.jsonl'}")
    return 0


SAMPLE_DOC = "Sample recipe {name!r} from a checkpoint folder or its pretrained model."


def _sample_fields(args: list[str]):
    """The options of ``genmodels sample`` (name, annotated type, default), described
    from the recipe's config."""

    def fields(cfg) -> list:
        method = cfg.build()
        names = tuple(method.samplers)
        suffix = method.sample_suffix
        steps = getattr(cfg, "sample_steps", None)
        from genmodels.samplers.registry import PRECISIONS

        recipe = args[0] if args else "RECIPE"
        batch = getattr(cfg, "sample_batch", None)
        return [
            _opt("checkpoint", str, "pretrained",
                 "a training run or export folder, or 'pretrained' (the recipe's shipped model)"),
            _opt("num", int, 1000, "how many samples (at least 1)"),
            _opt("out", str, f"samples/{recipe}{suffix}",
                 f"the sample file ({suffix}; the suffix is added when missing)"),
            _opt("sampler", str | None, None,
                 f"the sampler ('genmodels samplers {recipe}' describes them)",
                 choices=names, hint=f"(default: {names[0]})"),
            _opt("steps", int | None, None, "sampling steps (adaptive samplers choose their own)",
                 hint=f"(default: {steps if steps is not None else 'the recipe' + chr(39) + 's'})"),
            _opt("seed", int, 0, "random seed; the same seed gives the same samples"),
            _opt("batch_size", int | None, None, "samples per jitted round",
                 hint=f"(default: {batch if batch is not None else 'the recipe' + chr(39) + 's'})"),
            _opt("correction", bool, True,
                 "molecules only: valency correction (--no-correction writes the raw molecules)"),
            _opt("precision", str | None, None,
                 "categorical sampling precision (masked diffusion)",
                 choices=tuple(PRECISIONS), hint="(default: the sampler's)"),
            _opt("label", int | None, None,
                 "class-conditional recipes (e.g. flow_mnist_cond): the class to sample"),
            _opt("guidance", float | None, None,
                 "classifier-free guidance weight w with --label: out_u + w (out_c - out_u)",
                 hint="(default: 1, the conditional model; 0: unconditional)"),
        ]  # fmt: skip

    return fields


def cmd_sample(args: list[str]) -> int:
    name, info, p = _recipe_command("sample", args, _sample_fields(args), SAMPLE_DOC, trained=True)
    _check_positive(num=p.num, steps=p.steps, batch_size=p.batch_size)
    config = p.config
    method = config.build()
    choices = tuple(method.samplers) + (("fast",) if hasattr(config, "fast") else ())
    sampler, steps = p.sampler, p.steps
    if sampler == "fast" and "fast" in choices:  # the recipe's few-step setting
        sampler, steps = config.fast[0], steps or config.fast[1]
    if p.sampler is not None and p.sampler not in choices:
        raise UsageError(
            f"recipe {name!r} has no sampler {p.sampler!r}; choose one of "
            f"{', '.join(choices)} (genmodels samplers {name} describes them)"
        )
    from genmodels.samplers.registry import PRECISIONS

    if p.precision is not None and p.precision not in PRECISIONS:
        raise UsageError(f"--precision {p.precision!r}: choose one of {', '.join(PRECISIONS)}")
    if not p.correction and method.sample_suffix != ".smi":
        raise UsageError(f"--no-correction applies to molecule recipes; {name!r} is not one")
    condition = getattr(getattr(method, "task", None), "condition", None)
    if p.label is not None or p.guidance is not None:
        if condition is None or condition.kind != "label":
            raise UsageError(
                f"recipe {name!r} is not class-conditional; --label / --guidance need one "
                "such as flow_mnist_cond or edm_mnist_cond"
            )
        if p.label is None:
            raise UsageError("--guidance needs --label (the class to guide toward)")
        if not 0 <= p.label < condition.num_classes:
            raise UsageError(f"--label must be in [0, {condition.num_classes}), got {p.label}")
    out = _check_out(p.out, method.sample_suffix, name)
    ckpt = _checkpoint(info, p.checkpoint)
    from genmodels.models.run import sample_recipe

    options = {} if p.correction else {"correction": False}
    if p.precision is not None:
        options["precision"] = p.precision
    options.update({k: getattr(p, k) for k in ("label", "guidance") if getattr(p, k) is not None})
    how = {k: getattr(p, k) for k in ("num", "seed", "batch_size")}
    how.update(sampler=sampler, steps=steps)
    written = sample_recipe(config, ckpt, out=out, recipe=name, **how, **options)
    print(f"wrote {p.num} samples to {written}")
    return 0


def cmd_evaluate(args: list[str]) -> int:
    def fields(cfg) -> list:
        method = cfg.build()
        splits, suffixes = tuple(method.eval_splits), method.sample_suffixes
        return [
            _opt("samples", str, "", f"the sample file to evaluate ({', '.join(suffixes)})"),
            _opt("split", str, splits[0], "the reference split", choices=splits),
            _opt("checkpoint", str | None, None,
                 "a training run: compare with the data it was trained on (its --dataset)",
                 hint="(default: the recipe's dataset)"),
        ]  # fmt: skip

    name, info, p = _recipe_command(
        "evaluate",
        args,
        fields,
        "Evaluate a sample file against recipe {name!r}'s data; prints one JSON object.",
        trained=True,
    )
    if not p.samples:
        raise UsageError(f"evaluate needs --samples FILE (see genmodels evaluate {name} --help)")
    config = p.config
    if p.checkpoint is not None:
        _checkpoint(info, p.checkpoint)
    method = config.build()
    splits = tuple(method.eval_splits)
    if p.split not in splits:
        raise UsageError(f"unknown split {p.split!r}; choose one of {', '.join(splits)}")
    path = Path(p.samples)
    if not path.exists():
        raise MissingFileError(f"sample file {path} does not exist")
    if path.is_dir():
        raise UsageError(f"--samples {path} is a folder; give a sample file")
    from genmodels.models.run import read_sidecar

    samples = method.read_samples(path)
    metrics = method.evaluate(samples, split=p.split, meta=read_sidecar(path))
    print(json.dumps(metrics, sort_keys=True))
    return 0


def cmd_export(args: list[str]) -> int:
    name, info, p = _recipe_command(
        "export",
        args,
        [
            _opt("checkpoint", str, "", "the training run folder to export"),
            _opt(
                "out",
                str | None,
                None,
                "the export folder (default: the recipe's pretrained folder)",
            ),
            _opt("overwrite", bool, False, "replace an existing export"),
        ],
        "Export a training run of recipe {name!r} as a pretrained model: only the "
        "parameters it samples with (default --out {pretrained}).",
    )
    if not p.checkpoint:
        raise UsageError("export needs --checkpoint DIR (a training run folder)")
    from genmodels.models.run import export_recipe
    from genmodels.train.export import folder_size

    dest = Path(p.out) if p.out else info.pretrained_dir
    try:
        folder = export_recipe(p.config, p.checkpoint, dest, overwrite=p.overwrite, recipe=name)
    except FileExistsError as e:
        raise UsageError(f"{e} (or pass --overwrite)") from None
    except FileNotFoundError as e:
        raise MissingFileError(str(e)) from None
    print(f"exported to {folder} ({folder_size(folder) / 1e6:.2f} MB)")
    return 0


def cmd_samplers(args: list[str]) -> int:
    """``genmodels samplers RECIPE``: the registry entries this recipe's processes accept."""
    name, rest = _need_recipe("samplers", args)
    if rest:
        raise UsageError(f"genmodels samplers takes only a recipe name, got {' '.join(rest)}")
    cfg, _ = load_recipe(name)
    from genmodels.samplers.registry import REGISTRY, describe

    names = tuple(cfg.build().samplers)
    width = max(len(n) for n in names)
    print(f"samplers of {name} (use: genmodels sample {name} --sampler NAME [--steps K]):")
    for i, n in enumerate(names):
        entry = REGISTRY[n]
        steps = "adaptive unless --steps" if entry.adaptive else "--steps K"
        tag = "default" if i == 0 else ""
        opts = entry.make_options(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)})
        print(f"  {n:<{width}}  {tag:<7}  {describe(entry, opts)} [{steps}]")
    if hasattr(cfg, "fast"):
        fast = f"{cfg.fast[0]} at {cfg.fast[1]} steps: the fewest network calls measured to keep"
        print(f"  {'fast':<{width}}  {'':<7}  {fast} the default's quality [--steps K]")
    print(f"default steps: {getattr(cfg, 'sample_steps', 'n/a')}")
    return 0


@dataclasses.dataclass(frozen=True)
class BossGridsArgs:
    """Compute Bellman-optimal (BOSS) Euler time grids of a flow checkpoint and write
    ``boss_grids.json`` next to it (``--sampler boss --steps K`` then uses them).

    Attributes:
      checkpoint: ``pretrained`` or a training run folder.
      num_samples: prior draws averaged in the cost matrix (BOSS: 100).
      fine_steps: Kmax, steps of the fine uniform Euler grid (BOSS: 100).
      ks: step budgets K.
      batch_size: draws per jitted call.
      seed: seed of the prior draws.
      out: the grid file (default: the checkpoint folder's ``boss_grids.json``).
    """

    checkpoint: str = "pretrained"
    num_samples: int = 100
    fine_steps: int = 100
    ks: tuple[int, ...] = tuple(range(2, 11))
    batch_size: int = 100
    seed: int = 0
    out: str | None = None


def cmd_boss_grids(args: list[str]) -> int:
    """``genmodels boss-grids RECIPE --checkpoint DIR``: Bellman-optimal step grids of a
    flow checkpoint (Nguyen et al., ICLR 2024; :mod:`genmodels.samplers.boss`), written to
    ``boss_grids.json`` (and the cost matrix) next to it and printed."""
    name, rest = _need_recipe("boss-grids", args)
    a = _parse(f"genmodels boss-grids {name}", BossGridsArgs, rest)
    _check_positive(num_samples=a.num_samples, fine_steps=a.fine_steps, batch_size=a.batch_size)
    from genmodels.models.flow import FlowMethod
    from genmodels.models.run import load_recipe_model
    from genmodels.samplers.boss import grid_table, grids_for_checkpoint

    cfg, info = load_recipe(name)
    if not isinstance(cfg.build(), FlowMethod):
        raise UsageError(f"{name!r} is not a flow recipe; BOSS grids need a flow model")
    folder = _checkpoint(info, a.checkpoint)
    method, model, _ = load_recipe_model(cfg, folder, recipe=name)
    opts = dataclasses.asdict(a)
    del opts["checkpoint"]
    path, grids, ginfo = grids_for_checkpoint(
        method.boss_problem(model), folder, recipe=name, **opts
    )
    print(grid_table(grids, ginfo))
    print(
        f"\nwrote {path} ({ginfo['num_samples']} draws, Kmax = {ginfo['fine_steps']}, {ginfo['seconds']:.0f} s)"
    )
    return 0


OPTIMIZE_DOC = (
    "CDVAE's property optimisation with recipe {name!r} (scripts/evaluate.py "
    "'optimization'): Adam on the latents of the first --num-starts crystals of --split to "
    "minimize the property head, --saved snapshots decoded and scored with the dataset's "
    "property model: SR5/SR10/SR15 and validity, written to --out (optimize.json, "
    "optimized.cif) and printed."
)


def _optimize_fields(cfg) -> list:
    return [
        _opt("checkpoint", str, "pretrained",
             "a run or export folder of a model trained with --predict-property, or 'pretrained'"),
        _opt("num_starts", int, 100, "starting latents (CDVAE 100)"),
        _opt("steps", int, 5000, "Adam steps on the latents (CDVAE 5000)"),
        _opt("lr", float, 1e-3, "Adam learning rate (CDVAE 1e-3)"),
        _opt("saved", int, 10, "snapshots decoded and scored, the last one included (CDVAE 10)"),
        _opt("ld_steps", int | None, None, "Langevin steps per noise level when decoding",
             hint="(default: the recipe's n_step_each)"),
        _opt("start", str, "data", "start from --split crystals' latents or from N(0, I)",
             choices=("data", "random")),
        _opt("split", str, "test", "the split of the starting crystals",
             choices=("test", "val", "train")),
        _opt("property_model", str | None, None,
             "a property model folder (python benchmarks/property_model.py DATASET --out DIR)",
             hint="(default: the one shipped for the dataset)"),
        _opt("seed", int, 0, "random seed (starting latents and decoding)"),
        _opt("out", str | None, None, "folder for optimize.json and optimized.cif",
             hint="(default: samples/RECIPE_optimize)"),
    ]  # fmt: skip


def cmd_optimize(args: list[str]) -> int:
    """``genmodels optimize RECIPE --checkpoint DIR``: CDVAE's property optimisation and
    its success rates (:func:`genmodels.optimization.optimize_and_score`)."""
    name, info, p = _recipe_command("optimize", args, _optimize_fields, OPTIMIZE_DOC, trained=True)
    _check_positive(num_starts=p.num_starts, steps=p.steps, saved=p.saved, ld_steps=p.ld_steps)
    if p.saved > p.steps or p.lr <= 0 or p.start not in ("data", "random"):
        raise UsageError(
            "optimize needs --saved <= --steps, --lr > 0 and --start data|random; got "
            f"--saved {p.saved} --steps {p.steps} --lr {p.lr} --start {p.start}"
        )
    from genmodels.metrics.property_model import load_property_model, shipped_property_model_dir
    from genmodels.optimization import PropertyOptimizer

    config = p.config
    method = config.build()
    if not isinstance(method, PropertyOptimizer):
        raise UsageError(f"{name!r} has no latent property optimisation (a CDVAE recipe has)")
    folder = _checkpoint(info, p.checkpoint)
    if not config.predict_property:
        raise UsageError(
            f"checkpoint {folder} has no property head: train one with `genmodels train {name} "
            "--predict-property --workdir DIR` (config field predict_property=True)"
        )
    pm_dir = p.property_model or shipped_property_model_dir(config.dataset)
    if pm_dir is None:
        raise UsageError(
            f"no property model ships for dataset {config.dataset!r}; pass --property-model DIR "
            f"(python benchmarks/property_model.py {config.dataset} --out DIR)"
        )
    property_model = load_property_model(pm_dir)
    out = Path(p.out or f"samples/{name}_optimize")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".genmodels-write-test-"):
            pass
    except OSError as e:
        raise UsageError(
            f"cannot write to {out} ({e.strerror or e}); choose another --out"
        ) from None
    import jax

    from genmodels.models.run import load_recipe_model
    from genmodels.optimization import optimize_and_score

    method, model, _ = load_recipe_model(config, folder, recipe=name)
    how = dict(num_starts=p.num_starts, steps=p.steps, lr=p.lr, num_saved=p.saved)
    how.update(ld_steps=p.ld_steps, start=p.start, split=p.split)
    record = optimize_and_score(
        method, model, property_model, jax.random.PRNGKey(p.seed), out_dir=out, **how
    )
    print(f"wrote {out / 'optimize.json'} and {out / 'optimized.cif'}")
    print(json.dumps(record["metrics"], sort_keys=True))
    return 0


HANDLERS = {
    "recipes": cmd_recipes,
    "train": cmd_train,
    "sample": cmd_sample,
    "evaluate": cmd_evaluate,
    "export": cmd_export,
    "samplers": cmd_samplers,
    "boss-grids": cmd_boss_grids,
    "optimize": cmd_optimize,
}


# ------------------------------------------------------------------ entry point


#: global options of a multi-process run -> (keyword of ``distributed.initialize``, type)
_DIST_OPTIONS = {
    "--coordinator": ("coordinator", str),
    "--num-processes": ("num_processes", int),
    "--process-id": ("process_id", int),
}


def _global_options(argv: list[str]) -> tuple[list[str], bool]:
    """Strip ``--debug``, ``--recipes-dir DIR`` and the multi-process options (anywhere)
    from ``argv``; join the multi-process run they (or the cluster) describe."""
    debug = os.environ.get("GENMODELS_DEBUG", "") not in ("", "0")
    out, i, dist = [], 0, {}
    while i < len(argv):
        a = argv[i]
        name = a.split("=", 1)[0]
        if name in _DIST_OPTIONS:
            key, typ = _DIST_OPTIONS[name]
            if "=" not in a and i + 1 >= len(argv):
                raise UsageError(f"{name} needs a value")
            value = a.split("=", 1)[1] if "=" in a else argv[i + 1]
            i += "=" not in a
            try:
                dist[key] = typ(value)
            except ValueError:
                raise UsageError(f"{name} takes an integer, got {value!r}") from None
        elif a == "--debug":
            debug = True
        elif a == "--recipes-dir" or a.startswith("--recipes-dir="):
            if "=" in a:
                folder = a.split("=", 1)[1]
            elif i + 1 < len(argv):
                folder = argv[i + 1]
                i += 1
            else:
                raise UsageError("--recipes-dir needs a folder")
            _use_recipes_dir(folder)
        else:
            out.append(a)
        i += 1
    if dist or (out and out[0] in ("train", "sample")):
        from genmodels.train.distributed import cluster_detected, initialize

        if dist or cluster_detected():
            try:
                initialize(**dist)
            except ValueError as e:
                raise UsageError(str(e)) from None
    return out, debug


def _use_recipes_dir(folder: str) -> None:
    from genmodels import recipes

    recipes.use_recipes_dir(Path(folder))


def _one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (a library message may wrap)."""
    return (
        " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
    )


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """Warnings as one line (``genmodels: warning: ...``), not file, line and source."""
    return f"genmodels: warning: {_one_line(message)}\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.formatwarning = _warning_line
    cmd = "genmodels"
    debug = "--debug" in argv
    from genmodels.recipes import clear_recipes_dirs

    clear_recipes_dirs()  # --recipes-dir of an earlier in-process call does not carry over
    try:
        argv, debug = _global_options(argv)
        if not argv or argv[0] in ("-h", "--help"):
            print(USAGE)
            return 0
        if argv[0] not in HANDLERS:
            raise UsageError(f"unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}")
        cmd, rest = f"genmodels {argv[0]}", argv[1:]
        _persistent_compile_cache()
        return HANDLERS[argv[0]](rest)
    except _Exit as e:
        return e.code
    except BrokenPipeError:
        # `genmodels recipes | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as e:
        if debug:
            traceback.print_exc()
        return _report(cmd, e)
    except KeyboardInterrupt as e:
        if debug:
            traceback.print_exc()
        if isinstance(e, GenmodelsError):
            print(f"{cmd}: {e}", file=sys.stderr)
            return e.exit_code
        print(f"{cmd}: interrupted; nothing was written", file=sys.stderr)
        return 130


def _persistent_compile_cache() -> None:
    """XLA's persistent compilation cache in ``<cache folder>/xla``: a second start of a
    command loads the programs the first compiled (a recipe's training step, its sampler)
    instead of compiling them again. ``JAX_COMPILATION_CACHE_DIR`` moves it;
    ``GENMODELS_XLA_CACHE=0`` turns it off. The cache is keyed by the program, the jax
    version and the device, so it changes no result."""
    import jax

    if os.environ.get("GENMODELS_XLA_CACHE", "1") == "0" or jax.config.jax_compilation_cache_dir:
        return
    from genmodels.datasets.registry import cache_dir

    jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _report(cmd: str, e: Exception) -> int:
    """Print ``e`` as one line on stderr; return the exit code."""
    if isinstance(e, GenmodelsError):
        print(f"{cmd}: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    if isinstance(e, RecipeError):
        print(f"{cmd}: {_one_line(e)}", file=sys.stderr)
        return 2
    if isinstance(e, OSError | UnicodeError):
        print(f"{cmd}: {_one_line(e)}", file=sys.stderr)
        return 1
    print(
        f"{cmd}: internal error {type(e).__name__}: {_one_line(e)} "
        "(rerun with --debug for the traceback, and please report it)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
