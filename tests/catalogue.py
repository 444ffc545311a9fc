"""The shared harness of the bad-input catalogue: run a command in-process, check the README's promise.

The promise for every bad input: the expected exit code, one short line on stderr naming the file or value
and what to do, no traceback, nothing new left in the output folder, and every good input kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mammo.cli import main

PROGRESS = re.compile(r"\d+%\||it/s\]|s/it\]|img/s\]")  # tqdm bars share stderr with the error line


@dataclass
class Outcome:
    """What a command did: exit code, stdout, the error lines of stderr (progress bars removed)."""

    code: int
    out: str
    errors: list[str] = field(default_factory=list)


def run(argv: list[object], capsys) -> Outcome:
    """`mammo ARGV` in this process; stderr split on newlines and carriage returns, progress bars dropped."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    lines = [x.strip() for x in re.split(r"[\r\n]", captured.err)]
    return Outcome(code, captured.out, [x for x in lines if x and not PROGRESS.search(x)])


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) -> its bytes; {} when the folder does not exist."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(result: Outcome, code: int, *needles: str) -> str:
    """The command failed with `code` and exactly one `mammo CMD: error: ...` line holding every needle."""
    assert result.code == code, (result.code, result.errors)
    assert len(result.errors) == 1, result.errors
    line = result.errors[0]
    assert line.startswith("mammo ") and ": error: " in line and "Traceback" not in line, line
    assert len(line) < 400, line
    for needle in needles:
        assert needle in line, (needle, line)
    return line
