"""What every command module shares: the `Command` record, the help formatter and the options used by several."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammo.io.devices import DEVICE_HELP, DEVICES
from mammo.track.spec import TRACK_HELP
from mammo.train.config import FLAGS


@dataclass(frozen=True)
class Command:
    """One subcommand: its name and help, the options it takes, the function it runs and the README's examples."""

    name: str
    help: str
    options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    examples: str = ""  # shown under --help; tests/test_cli.py keeps them in step with the README


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and appends an option's default to its help (unless the help says it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or action.default is None
            or action.default is argparse.SUPPRESS
            or action.nargs == 0
            or action.required
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class _Given(argparse.Action):
    """Stores a training flag's value and notes that it was given: only given flags override --config."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = namespace.given | {self.dest}


class _GivenSwitch(argparse.BooleanOptionalAction):
    """--name / --no-name for a true-or-false training field, noted as given like `_Given`."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        super().__call__(parser, namespace, values, option_string)
        namespace.given = namespace.given | {self.dest}


def train_options(s: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (`train` and `cv`): type, choices, help and default all from the field."""
    group = s.add_argument_group(
        "training options", "each flag given overrides --config, which overrides the model's train_defaults"
    )
    s.set_defaults(given=frozenset())
    for f in FLAGS:
        meta, default = f.metadata, f.default
        name = "--" + f.name.replace("_", "-")
        kind = str(f.type).split("|")[0].strip()
        shown = meta["default_text"] or (("off", "on")[default] if kind == "bool" else default)
        if kind == "bool":
            group.add_argument(
                name, action=_GivenSwitch, default=default, help=f"{meta['help']} (default: {shown})"
            )
            continue
        group.add_argument(
            name,
            action=_Given,
            type={"int": int, "float": float}.get(kind, str),
            choices=meta["choices"],
            default=default,
            help=f"{meta['help']} (default: {shown})",
        )


def track_option(s: argparse.ArgumentParser) -> None:
    """--track for `train` and `cv`: which experiment trackers log the run (none by default)."""
    s.add_argument("--track", default="none", metavar="TRACKERS", help=TRACK_HELP)


def recipe_options(s: argparse.ArgumentParser) -> None:
    """--pooling and --trunk-cache, which `train` and `cv` share (the model argument and the cached recipe)."""
    s.add_argument(  # checked by the model's registry entry (mammo.models.pooling.POOLINGS): no torch here
        "--pooling", help="efficientnet-lite pooling: avg, max, topk, tiles or attention (default: avg)"
    )
    s.add_argument(
        "--trunk-cache",
        type=Path,
        help="train only the layers after --freeze on trunk outputs cached once per image in this folder "
        "(shared by runs and folds); fixed epochs, no early stopping (default: train the whole network)",
    )


def train_overrides(a: argparse.Namespace, leave: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The given training flags (minus `leave`) as TrainConfig overrides; --pooling becomes model_args."""
    overrides: dict[str, Any] = {k: getattr(a, k) for k in a.given - leave}
    if a.pooling:
        overrides["model_args"] = {"pooling": a.pooling}
    return overrides


def device_option(s: argparse.ArgumentParser) -> None:
    """--device, the same everywhere train and cv excepted (theirs comes from TrainConfig, the same choices)."""
    s.add_argument(
        "--device", choices=DEVICES, default=DEVICES[0], help=f"{DEVICE_HELP} (default: {DEVICES[0]})"
    )


def cluster_option(s: argparse.ArgumentParser, work: str) -> None:
    """--cluster, the same for prepare and predict: a Dask scheduler (or local:N) does `work` instead of --workers."""
    s.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help=f"{work} on a Dask cluster instead of --workers processes: a scheduler address "
        "(tcp://HOST:8786) or local:N for N local worker processes; the workers must see the files at the same "
        "paths; needs mammo[cluster], see docs/scale.md (default: none)",
    )


def input_flags(s: argparse.ArgumentParser) -> None:
    """How `predict` and `explain` are told about their inputs beyond the paths: a table, a lesion box, crops."""
    s.add_argument(
        "--table",
        type=Path,
        help="CSV in the ingest table format: image [patient_id, side, view, x_min, y_min, x_max, y_max] "
        "(default: none)",
    )
    s.add_argument(
        "--box",
        help="x0,y0,x1,y1 lesion box in source pixels, for inputs without a table box. An roi (lesion-crop) run "
        "needs a box per whole image and refuses inputs without one (default: none)",
    )
    s.add_argument(
        "--crops",
        action="store_true",
        help="roi runs: the inputs without a box are lesion crops already, each scored whole (default: refuse "
        "them and ask for --box or --table)",
    )
