"""The ``genmodels`` command: ``recipes | train | sample | evaluate | export``.

    genmodels recipes
    genmodels train RECIPE [--workdir DIR] [config overrides, e.g. --train.steps 500]
    genmodels sample RECIPE --checkpoint DIR|pretrained --num N --out FILE
                     [--sampler NAME] [--steps K] [--seed S]
    genmodels evaluate RECIPE --samples FILE [--split test]
    genmodels export RECIPE --checkpoint DIR [--out DIR] [--overwrite]
    genmodels samplers RECIPE                 # the samplers this recipe can use
    genmodels boss-grids RECIPE --checkpoint DIR|pretrained   # BOSS step grids

Overrides of the recipe's config go through tyro: ``genmodels train RECIPE --help`` lists
every field (``--train.steps``); ``sample``/``evaluate`` take them as ``--config.FIELD``. The outer arguments are parsed by tyro too, from small dataclasses.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import tyro

from genmodels.recipes import RecipeError, list_recipes, load_recipe

COMMANDS = ("recipes", "train", "sample", "evaluate", "export", "samplers", "boss-grids")
USAGE = __doc__


def _command_type(
    name: str, cfg: Any, fields: list[tuple[str, Any, Any]], doc: str, flatten: bool = True
):
    """A dataclass with the command's own fields plus the recipe config.

    ``train`` flattens the config (``--train.steps``); ``sample``/``evaluate`` keep it under
    ``--config.`` because their own options (``--sampler``, ``--steps``) may share names
    with config fields.
    """
    spec = [(n, t, dataclasses.field(default=d)) for n, t, d in fields]
    ctype = Annotated[type(cfg), tyro.conf.arg(name="")] if flatten else type(cfg)
    spec.append(("config", ctype, dataclasses.field(default=cfg)))
    cls = dataclasses.make_dataclass(name, spec, frozen=True)
    cls.__doc__ = doc
    return cls


def _parse(prog: str, cls, args: list[str]):
    return tyro.cli(cls, args=args, prog=prog, config=(tyro.conf.FlagConversionOff,))


def cmd_recipes(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(
            "usage: genmodels recipes\n\nList the recipes and whether a pretrained model ships with each."
        )
        return 0
    recipes = list_recipes()
    if not recipes:
        print("no recipes found (looked in ./recipes and next to the package)")
        return 1
    width = max(len(n) for n in recipes)
    for name, info in sorted(recipes.items()):
        tag = "[pretrained]" if info.has_pretrained else "            "
        print(f"{name:<{width}}  {tag}  {info.description}")
    return 0


class _Exit(Exception):
    """Stop a command with this exit code (its message is already printed)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _need_recipe(cmd: str, args: list[str]) -> tuple[str, list[str]]:
    """``(RECIPE, rest)`` of ``genmodels CMD RECIPE ...``; prints the usage and raises
    :class:`_Exit` (0 for ``--help``, 2 otherwise) when the recipe is missing."""
    if not args or args[0].startswith("-"):
        names = ", ".join(sorted(list_recipes()))
        print(
            f"usage: genmodels {cmd} RECIPE [options]   (genmodels {cmd} RECIPE --help for all options)"
        )
        print(f"recipes: {names}")
        raise _Exit(0 if any(a in ("-h", "--help") for a in args) else 2)
    return args[0], args[1:]


def _recipe_command(
    cmd: str, args: list[str], fields: list[tuple[str, Any, Any]], doc: str, flatten: bool = False
):
    """``(name, info, parsed)`` of ``genmodels CMD RECIPE [options]``: the recipe loaded
    and the command's options (plus the config's, under ``--config.``) parsed by tyro.
    ``doc`` may use ``{name}`` and ``{pretrained}``."""
    name, rest = _need_recipe(cmd, args)
    cfg, info = load_recipe(name)
    text = doc.format(name=name, pretrained=info.pretrained_dir)
    cls = _command_type(cmd.replace("-", "_").title(), cfg, fields, text, flatten=flatten)
    return name, info, _parse(f"genmodels {cmd} {name}", cls, rest)


def cmd_train(args: list[str]) -> int:
    name, _, parsed = _recipe_command(
        "train",
        args,
        [("workdir", str | None, None)],
        "Train recipe {name!r} (resumes from WORKDIR's latest checkpoint; default runs/{name}).",
        flatten=True,
    )
    from genmodels.models.run import train_recipe

    workdir = Path(parsed.workdir or f"runs/{name}")
    train_recipe(parsed.config, workdir)
    print(f"checkpoints in {workdir / 'checkpoints'}; log in {workdir / 'metrics.jsonl'}")
    return 0


SAMPLE_DOC = "Sample recipe {name!r} from a checkpoint folder or its pretrained model."


def _sample_fields(args: list[str]) -> list[tuple[str, Any, Any]]:
    """The options of ``genmodels sample`` (name, type, default)."""
    out = f"samples/{args[0] if args else 'out'}"
    return [
        ("checkpoint", str, "pretrained"), ("num", int, 1000), ("out", str, out),
        ("sampler", str | None, None), ("steps", int | None, None), ("seed", int, 0),
        ("batch_size", int | None, None), ("no_correction", bool, False),
        ("precision", str | None, None),
    ]  # fmt: skip


def cmd_sample(args: list[str]) -> int:
    name, info, p = _recipe_command("sample", args, _sample_fields(args), SAMPLE_DOC)
    from genmodels.models.run import sample_recipe

    if p.sampler is not None:
        choices = tuple(p.config.build().samplers)
        if p.sampler not in choices:
            print(
                f"genmodels sample: recipe {name!r} has no sampler {p.sampler!r}; choose one of "
                f"{', '.join(choices)} (genmodels samplers {name} describes them)",
                file=sys.stderr,
            )
            return 2
    ckpt = info.pretrained_dir if p.checkpoint == "pretrained" else Path(p.checkpoint)
    if p.checkpoint == "pretrained" and not info.has_pretrained:
        raise SystemExit(
            f"recipe {name!r} ships no pretrained model (looked in {info.pretrained_dir}); "
            f"train one with `genmodels train {name} --workdir DIR` and pass --checkpoint DIR"
        )
    options = {"correction": False} if p.no_correction else {}
    if p.precision is not None:
        options["precision"] = p.precision
    how = {k: getattr(p, k) for k in ("num", "sampler", "steps", "seed", "batch_size")}
    out = sample_recipe(p.config, ckpt, out=Path(p.out), **how, **options)
    print(f"wrote {p.num} samples to {out}")
    return 0


def cmd_evaluate(args: list[str]) -> int:
    _, _, p = _recipe_command(
        "evaluate",
        args,
        [("samples", str, ""), ("split", str, "test")],
        "Evaluate a sample file against recipe {name!r}'s data; prints one JSON object.",
    )
    if not p.samples:
        raise SystemExit("evaluate needs --samples FILE")
    path = Path(p.samples)
    if not path.exists():
        raise SystemExit(f"sample file {path} does not exist")
    from genmodels.models.run import read_sidecar

    method = p.config.build()
    metrics = method.evaluate(method.read_samples(path), split=p.split, meta=read_sidecar(path))
    print(json.dumps(metrics, sort_keys=True))
    return 0


def cmd_export(args: list[str]) -> int:
    _, info, p = _recipe_command(
        "export",
        args,
        [("checkpoint", str, ""), ("out", str | None, None), ("overwrite", bool, False)],
        "Export a training run of recipe {name!r} as a pretrained model: only the "
        "parameters it samples with (default --out {pretrained}).",
    )
    if not p.checkpoint:
        raise SystemExit("export needs --checkpoint DIR (a training run folder)")
    from genmodels.models.run import export_recipe
    from genmodels.train.export import folder_size

    dest = Path(p.out) if p.out else info.pretrained_dir
    try:
        folder = export_recipe(p.config, p.checkpoint, dest, overwrite=p.overwrite)
    except (FileExistsError, FileNotFoundError) as e:
        raise SystemExit(f"genmodels export: {e}") from e
    print(f"exported to {folder} ({folder_size(folder) / 1e6:.2f} MB)")
    return 0


def cmd_samplers(args: list[str]) -> int:
    """``genmodels samplers RECIPE``: the registry entries this recipe's processes accept."""
    name, rest = _need_recipe("samplers", args)
    if rest:
        print(f"genmodels samplers takes only a recipe name, got {' '.join(rest)}", file=sys.stderr)
        return 2
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
    from genmodels.models.flow import FlowMethod
    from genmodels.models.run import load_recipe_model, resolve_checkpoint
    from genmodels.samplers.boss import grid_table, grids_for_checkpoint

    cfg, info = load_recipe(name)
    try:
        folder = resolve_checkpoint(info, a.checkpoint)
    except FileNotFoundError as e:
        print(f"genmodels boss-grids: {e}", file=sys.stderr)
        return 2
    method, model, _ = load_recipe_model(cfg, folder)
    if not isinstance(method, FlowMethod):
        print(f"genmodels boss-grids: {name!r} is not a flow recipe", file=sys.stderr)
        return 2
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    handlers = {
        "recipes": cmd_recipes,
        "train": cmd_train,
        "sample": cmd_sample,
        "evaluate": cmd_evaluate,
        "export": cmd_export,
        "samplers": cmd_samplers,
        "boss-grids": cmd_boss_grids,
    }
    if cmd not in handlers:
        print(
            f"genmodels: unknown command {cmd!r}; choose one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    try:
        return handlers[cmd](rest)
    except _Exit as e:
        return e.code
    except RecipeError as e:
        print(f"genmodels: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
