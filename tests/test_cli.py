"""The CLI skin: help for every command, one-line errors with exit codes, no torch import for data commands."""

import subprocess
import sys
from pathlib import Path

import pytest

from mammo.cli import build_parser, main

COMMANDS = ["synth", "ingest", "validate", "prepare", "eda", "models", "train", "evaluate", "demo"]


def test_every_command_has_help(capsys) -> None:
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([name, "--help"])
        assert exc.value.code == 0
        assert f"mammo {name}" in capsys.readouterr().out


def test_python_dash_m_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mammo", "--help"], capture_output=True, text=True, check=True
    )
    assert "synth" in out.stdout and "evaluate" in out.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["prepare", "{tmp}/none", "--out", "{tmp}/prep"],
        ["train", "{tmp}/none", "--out", "{tmp}/run"],
        ["evaluate", "{tmp}/none"],
        ["ingest", "--table", "{tmp}/none.csv", "--out", "{tmp}/data"],
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys, argv: list[str]) -> None:
    rc = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "none" in err[0] and "Traceback" not in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from mammo.errors import UserError

    with pytest.raises(UserError):
        main(["--debug", "evaluate", str(tmp_path / "none")])


def test_data_commands_do_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from mammo.cli import main; "
        f"main(['synth', {str(tmp_path / 'dl')!r}, '--women', '4']); "
        f"main(['ingest', {str(tmp_path / 'dl')!r}, '--out', {str(tmp_path / 'data')!r}]); "
        f"main(['validate', {str(tmp_path / 'data')!r}]); "
        f"main(['prepare', {str(tmp_path / 'data')!r}, '--out', {str(tmp_path / 'prep')!r}, '--size', '64', '--workers', '1']); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "prep" / "dataset.csv").is_file()
