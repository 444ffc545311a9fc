"""The `mammo` command line: one module per group of commands, each command's parser beside its entry."""

from mammo.cli.main import build_parser, configure_logging, main

__all__ = ["build_parser", "configure_logging", "main"]
