"""The CLI skin: help for every command, one-line errors with exit codes, no torch import for data commands."""

import argparse
import logging
import re
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
        f"main(['prepare', {str(tmp_path / 'data')!r}, '--out', {str(tmp_path / 'prep')!r}, '--size', '64', '--workers', '0']); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "prep" / "dataset.csv").is_file()


@pytest.mark.parametrize("command", ["predict", "explain"])
def test_a_wrong_run_path_is_refused_before_torch_loads(tmp_path: Path, command: str) -> None:
    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "run").mkdir()
    (tmp_path / "run2").mkdir()
    (tmp_path / "run2" / "best.pt").write_bytes(b"")  # never read: the missing input is refused first
    code = (
        "import sys; from mammo.cli import main; "
        f"rc = main([{command!r}, '/no/such/run', {str(tmp_path / 'x.png')!r}]); "
        f"rc2 = main([{command!r}, {str(tmp_path / 'run')!r}, {str(tmp_path / 'x.png')!r}]); "
        f"rc3 = main([{command!r}, {str(tmp_path / 'run2')!r}, {str(tmp_path / 'typo.png')!r}]); "
        "print(rc, rc2, rc3, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "2", "2", "False"]
    err = out.stderr.strip().splitlines()
    assert len(err) == 3 and "/no/such/run: no such RUN folder" in err[0]
    assert "best.pt: checkpoint not found" in err[1] and "typo.png: no such file or folder" in err[2]


def test_python_dash_m_refuses_a_wrong_run_in_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mammo", "predict", "/no/such/run", "x.png"], capture_output=True, text=True
    )
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1 and "/no/such/run" in out.stderr


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser by name."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def test_every_option_has_help_and_shows_its_default() -> None:
    parser = build_parser()
    missing, no_default = [], []
    for name, sub in {"mammo": parser, **_subparsers(parser)}.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not (action.help or "").strip():
                missing.append(label)
            takes_value = action.option_strings and action.nargs != 0 and not action.required
            if takes_value and "default" not in formatter._get_help_string(action):
                no_default.append(label)
    assert missing == [], "options without help text"
    assert no_default == [], "options whose help does not show the default"


def test_help_shows_defaults() -> None:
    text = _subparsers(build_parser())["prepare"].format_help()
    assert "(default: 512)" in text and "(default: whole)" in text


def _readme_examples() -> dict[str, list[str]]:
    """The example lines of each `### mammo COMMAND` section's code block in the README."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    found: dict[str, list[str]] = {}
    for match in re.finditer(r"^### `mammo (\w+)`.*?\n```bash\n(.*?)```", readme, flags=re.M | re.S):
        found[match.group(1)] = [line.strip() for line in match.group(2).splitlines() if line.strip()]
    return found


def test_epilogs_hold_the_readme_examples() -> None:
    examples = _readme_examples()
    subs = _subparsers(build_parser())
    assert {"synth", "prepare", "train", "evaluate"} <= set(examples)
    for name, lines in examples.items():
        assert name in subs, f"README documents `mammo {name}`, which the CLI lacks"
        epilog = subs[name].format_help()
        for line in lines:
            assert line in epilog, f"mammo {name} --help lacks the README example: {line}"


def test_version_prints_the_package_version(capsys) -> None:
    from mammo import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"mammo {__version__}"


@pytest.mark.parametrize(
    ("flags", "level"), [([], logging.INFO), (["-q"], logging.WARNING), (["-v"], logging.DEBUG)]
)
def test_quiet_and_verbose_set_the_log_level(tmp_path: Path, flags: list[str], level: int) -> None:
    main([*flags, "validate", str(tmp_path / "none")])
    assert logging.getLogger("mammo").getEffectiveLevel() == level


def test_quiet_and_verbose_exclude_each_other(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["-q", "-v", "models"])
    assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_log_lines_reach_the_current_stderr(capsys) -> None:
    from mammo.cli import configure_logging

    configure_logging()
    logging.getLogger("mammo.test").info("hello from the library")
    configure_logging(quiet=True)
    logging.getLogger("mammo.test").info("hidden")
    assert capsys.readouterr().err == "hello from the library\n"


def _options(sub: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """A subcommand's options by dest."""
    return {a.dest: a for a in sub._actions if a.option_strings}


def test_every_train_config_field_is_a_flag_of_train_and_cv() -> None:
    import dataclasses

    from mammo.train.config import TrainConfig

    subs = _subparsers(build_parser())
    train, cv = _options(subs["train"]), _options(subs["cv"])
    for f in dataclasses.fields(TrainConfig):
        if not f.metadata["flag"]:  # prep (the positional PREP), model_args, optimizer_args: YAML only
            assert f.name in ("prep", "model_args", "optimizer_args")
            continue
        assert f.name in train and f.name in cv, f"--{f.name} missing"
        a, b = train[f.name], cv[f.name]
        assert a.option_strings[0] == "--" + f.name.replace("_", "-")
        assert a.help == b.help and a.help.startswith(f.metadata["help"]) and "(default: " in a.help
        assert a.default == b.default == f.default
        assert a.choices == b.choices == f.metadata["choices"]


def test_train_flags_override_the_yaml_only_when_given(tmp_path: Path) -> None:
    parser = build_parser()
    given = parser.parse_args(["train", "p", "--out", "r", "--epochs", "10", "--no-amp"])
    assert given.given == {"epochs", "amp"} and given.epochs == 10 and given.amp is False
    assert parser.parse_args(["train", "p", "--out", "r"]).given == frozenset()


def test_every_device_option_is_the_same() -> None:
    from mammo.predict.infer import DEVICES

    devices = {
        name: _options(sub)["device"]
        for name, sub in _subparsers(build_parser()).items()
        if "device" in _options(sub)
    }
    assert {"train", "cv", "evaluate", "explain", "report", "predict"} <= set(devices)
    for name, action in devices.items():
        assert tuple(action.choices) == DEVICES, name
        assert action.default == "auto", name
        assert action.help == devices["evaluate"].help, name


def test_train_and_cv_pass_only_the_given_flags(monkeypatch) -> None:
    import types

    import mammo.evaluate.cv
    import mammo.train.loop

    calls = {}

    def stand_in(name: str):
        def call(*args, **kwargs):
            calls[name] = kwargs
            return types.SimpleNamespace(summary=lambda: name)

        return call

    monkeypatch.setattr(mammo.train.loop, "train", stand_in("train"))
    monkeypatch.setattr(mammo.evaluate.cv, "run_cv", stand_in("cv"))
    flags = ["--epochs", "3", "--lr", "0.01", "--no-pretrained", "--seed", "4"]
    assert main(["train", "p", "--out", "r", *flags]) == 0
    assert calls["train"]["overrides"] == {"epochs": 3, "lr": 0.01, "pretrained": False, "seed": 4}
    assert main(["cv", "p", "--out", "c", *flags, "--device", "cpu"]) == 0
    assert calls["cv"]["overrides"] == {"epochs": 3, "lr": 0.01, "pretrained": False}
    assert calls["cv"]["seed"] == 4 and calls["cv"]["device"] == "cpu"
    assert main(["cv", "p", "--out", "c"]) == 0  # cv's seed and device as before: 0 and auto when not given
    assert calls["cv"]["overrides"] == {} and calls["cv"]["seed"] == 0 and calls["cv"]["device"] == "auto"


def test_every_command_is_placed_and_lives_beside_its_options() -> None:
    from mammo.cli.main import COMMANDS, ORDER

    assert sorted(ORDER) == sorted(COMMANDS), "a command module's COMMANDS and main.ORDER disagree"
    assert list(_subparsers(build_parser())) == list(ORDER)
    for command in COMMANDS.values():
        assert command.run.__module__ == command.options.__module__ != "mammo.cli.main", command.name


def test_cli_main_is_not_the_longest_module() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "mammo"
    lines = {p: len(p.read_text().splitlines()) for p in src.rglob("*.py")}
    longest = max(lines, key=lines.__getitem__)
    assert all(lines[p] < 300 for p in (src / "cli").glob("*.py")), "a CLI module grew past 300 lines"
    assert longest.parent.name != "cli"


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "RUN", "x.dcm"],
        ["train", "PREP", "--out", "o"],
        ["cv", "PREP", "--out", "o"],
        ["report", "RUN"],
    ],
)
def test_a_wrong_flag_shows_the_commands_own_usage(capsys, argv) -> None:
    command = argv[0]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--no-such-flag"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(f"usage: mammo {command} ")
    assert err.strip().endswith(f"mammo {command}: error: unrecognized arguments: --no-such-flag")
    with pytest.raises(SystemExit):
        main(["--no-such-flag", "models"])  # before the command: mammo's own usage
    assert "mammo: error: unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_cv_takes_every_option_of_train_but_resume(capsys) -> None:
    def options(command: str) -> set[str]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        return set(re.findall(r"(?m)^\s+(--[a-z][a-z-]*)", capsys.readouterr().out))

    train, cv = options("train"), options("cv")
    assert {"--pooling", "--trunk-cache", "--freeze", "--width"} <= cv
    assert train - cv == {"--resume"}
