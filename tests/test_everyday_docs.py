"""Every everyday command has --help ending in an example and appears in the README."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")

COMMANDS = [
    ("user", "add"), ("user", "list"),
    ("category", "add"), ("category", "list"), ("category", "delete"),
    ("expense", "add"), ("expense", "list"), ("expense", "update"), ("expense", "delete"),
    ("budget", "set"), ("budget", "list"), ("budget", "transfer"),
    ("alerts",), ("alerts", "ack"),
    ("summary",),
    ("import",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_everyday_command_help_has_example_and_readme_mentions_it(run_cli, command):
    result = run_cli(None, *command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    example = result.output.split("Example:", 1)[1]
    assert f"python cli.py {' '.join(command)}" in example
    assert re.search(rf"python cli\.py {' '.join(command)}(\s|$)", README, re.MULTILINE)
