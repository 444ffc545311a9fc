"""The `mammo` command: the top-level parser, logging and the one-line error contract.

Each command's options and entry live in this package's modules (data, train, evaluate, predict, pacs, demo);
this module assembles them in ORDER. Heavy libraries (torch, matplotlib) are imported inside the command that
needs them, so `mammo --help` and the data commands start fast. A UserError becomes one line on stderr and a
non-zero exit; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Sequence

from mammo import __version__
from mammo.cli import data, demo, evaluate, pacs, predict, train
from mammo.cli.options import Command, HelpFormatter
from mammo.errors import UserError

COMMANDS: dict[str, Command] = {
    c.name: c
    for module in (data, train, evaluate, predict, pacs, demo)
    for c in module.COMMANDS  # type: ignore[attr-defined]
}
# The order of `mammo --help`: the flow from a download to a result, then the tools around it.
ORDER = (
    "synth", "ingest", "validate", "prepare", "eda", "models", "train", "cv", "compare", "evaluate",
    "explain", "report", "runs", "predict", "export", "listen", "demo",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: every subcommand, each option with help and default, README examples as epilog."""
    p = argparse.ArgumentParser(
        prog="mammo",
        description="Mammography benign-vs-malignant: data to explained prediction.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    loud.add_argument("-v", "--verbose", action="store_true", help="log debugging detail too")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in ORDER:
        command = COMMANDS[name]
        examples = command.examples.strip("\n")
        sp = sub.add_parser(
            name,
            help=command.help,
            description=command.help,
            epilog="examples:\n" + textwrap.indent(examples, "  ") if examples else None,
            formatter_class=HelpFormatter,
        )
        command.options(sp)
        sp.set_defaults(func=command.run, command_parser=sp)
    return p


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; an option the command does not know is reported with that command's usage.

    argparse hands a subcommand's unknown options up to the top-level parser, whose error shows `mammo`'s usage,
    which does not list the command's options; the command's own parser says it instead.
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        given = list(sys.argv[1:] if argv is None else argv)
        before = given[: given.index(args.command)] if args.command in given else []
        owner = parser if any(u in before for u in unknown) else args.command_parser
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


class _StderrHandler(logging.StreamHandler):
    """A console handler that writes to whatever sys.stderr is at each record (redirections and captures work)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns one; the live sys.stderr wins
        pass


def configure_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Send the library's `mammo.*` log records to stderr: INFO by default, WARNING with -q, DEBUG with -v."""
    logger = logging.getLogger("mammo")
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one subcommand; UserError -> one line on stderr and its exit code."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    args = parse(argv)
    configure_logging(args.quiet, args.verbose)
    try:
        with logging_redirect_tqdm(loggers=[logging.getLogger("mammo")]):
            return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"mammo {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"mammo {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the disk, not the input: a full disk, a permission, a path that became a file
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            f"mammo {args.command}: error: {where}{exc.strerror or exc}; check the path and free space",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
