"""One CLI grammar (README, "Command-line grammar"), checked on every command.

Walks the whole command tree, so a new command or option is held to the same rules:
help for every option, tables named by path options, counts never called --videos,
--progress/--no-progress and --resume/--no-resume pairs, --workers meaning processes,
no positional arguments, and the renamed options of the last release still working.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from conftest import stderr_of

from weaksup.cli.main import app

#: Options that always name a table, a file or a folder.
PATH_OPTIONS = {
    "--videos",
    "--manifest",
    "--labels",
    "--probe",
    "--out",
    "--checkpoint",
    "--train",
    "--test",
    "--target-labels",
    "--table",
    "--support",
    "--drop-tags",
    "--aliases",
    "--hashtag-counts",
    "--labels-file",
    "--materialize",
    "--label-map",
    "--train-manifest",
    "--test-manifest",
    "--targets",
}
#: Commands that show progress bars, and so take --progress/--no-progress.
WITH_PROGRESS = {
    "quickstart",
    "synth-corpus",
    "match",
    "match-count",
    "partition-videos",
    "hashtag-counts",
    "label-audit",
    "probe",
    "splits",
    "shard",
    "fingerprint",
    "dedupe",
    "pretrain",
    "extract",
    "eval finetune",
}
#: Commands that resume from an earlier run's stamped pieces, and so take --resume/--no-resume.
WITH_RESUME = {"quickstart", "probe", "splits", "shard", "fingerprint", "pretrain", "extract", "eval finetune"}


def _commands() -> dict[str, object]:
    root = typer.main.get_command(app)
    out: dict[str, object] = {}

    def walk(command, prefix: str) -> None:
        if hasattr(command, "list_commands"):
            ctx = type(typer.main.get_command(app)).context_class(command)
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), f"{prefix} {name}".strip())
        else:
            out[prefix] = command

    walk(root, "")
    return out


COMMANDS = _commands()


def _options(command) -> list:
    return [p for p in command.params if p.param_type_name == "option" and not p.hidden]


def test_the_walk_finds_every_command() -> None:
    assert {"quickstart", "match", "pretrain", "eval fc-only", "eval finetune", "validate", "label-overlap"} <= set(
        COMMANDS
    )
    assert len(COMMANDS) >= 24


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_and_option_rules(name: str, cli) -> None:
    result = cli(*name.split(), "--help")
    assert result.exit_code == 0 and "Usage" in result.output, result.output
    assert "<bool>" not in result.output  # a flag takes no value
    command = COMMANDS[name]
    assert not [p for p in command.params if p.param_type_name == "argument" and not p.hidden], (
        "options, not positionals"
    )
    for p in _options(command):
        flag = p.opts[0]
        assert (p.help or "").strip(), f"{name} {flag}: no help"
        if flag in PATH_OPTIONS:
            assert p.bare_type() in ("Path", "str"), f"{name} {flag}: a table or folder, not a {p.bare_type()}"
        if p.bare_type() == "bool":
            assert p.is_flag, f"{name} {flag}: a boolean must be a flag"
        assert flag not in ("--no-resume", "--no-progress"), f"{name}: {flag} alone; use the --x/--no-x pair"
        if flag == "--workers":
            assert "process" in p.help or "actor" in p.help, f"{name} --workers: {p.help}"
    opts = {p.opts[0]: p for p in _options(command)}
    if name in WITH_PROGRESS:
        assert "--progress" in opts and opts["--progress"].secondary_opts == ["--no-progress"], name
    if name in WITH_RESUME:
        assert "--resume" in opts and opts["--resume"].secondary_opts == ["--no-resume"], name
    counts = [f for f, p in opts.items() if f == "--videos" and p.bare_type() == "int"]
    assert not counts, f"{name}: a count of videos is --num-videos"


def test_renamed_options_still_work_for_one_release(cli, tmp_path: Path) -> None:
    result = cli("synth-metadata", "--videos", "50", "--out", tmp_path / "v.parquet")
    assert result.exit_code == 0, result.output
    assert "deprecated" in stderr_of(result) and "--num-videos" in stderr_of(result)
    assert cli("synth-metadata", "--num-videos", "50", "--out", tmp_path / "w.parquet").exit_code == 0
    result = cli("schema", "labels")
    assert result.exit_code == 0 and '"labels"' in result.output and "schema --name NAME" in stderr_of(result)
    result = cli("validate", "labels", tmp_path / "missing.parquet")
    assert result.exit_code == 2 and "--schema NAME --table FILE" in stderr_of(result)
    assert "missing.parquet: file not found" in stderr_of(result)


def test_help_keeps_brackets_and_plain_flags(cli) -> None:
    """Rich markup once ate "[ray]" in pip install "weaksup[ray]" and showed flags as <bool>."""
    result = cli("probe", "--help")
    assert "weaksup[ray]" in result.output and "--resume / --no-resume" in result.output
