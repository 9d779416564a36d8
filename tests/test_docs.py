"""Documentation meta-tests: every command has help ending in an example, and the README
shows it being used (in the spirit of sqlite-utils' test_docs.py).

The command list is walked from the Click tree itself, so a new command cannot be added
without its help example and README entry.
"""

import re
from pathlib import Path

import click
import pytest

from cli import cli

PROJECT = Path(__file__).resolve().parent.parent
README = (PROJECT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (PROJECT / "Makefile").read_text(encoding="utf-8")


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if isinstance(command, click.Group):
            # A group that also acts on its own (e.g. `alerts`) is documented as a command too.
            if command.invoke_without_command:
                yield path
            yield from leaf_commands(command, path)
        else:
            yield path


COMMANDS = list(leaf_commands(cli))


def test_docs_command_tree_is_not_empty():
    assert {("db-init",), ("db", "status"), ("export",), ("check",), ("expense", "add")} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_docs_command_help_ends_with_an_example_of_itself(run_cli, command):
    result = run_cli(None, *command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output, f"{' '.join(command)} --help has no Example: block"
    example = result.output.split("Example:", 1)[1]
    assert f"python cli.py {' '.join(command)}" in example


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_docs_readme_shows_every_command(command):
    assert re.search(rf"python cli\.py {re.escape(' '.join(command))}(\s|$|`)", README, re.M), (
        f"README.md never shows `python cli.py {' '.join(command)}`"
    )


def test_docs_readme_gives_the_two_setup_commands():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "make export" in quick_start and "make test" in quick_start


@pytest.mark.parametrize("target", re.findall(r"^([a-z][a-z-]*):.*##", MAKEFILE, re.M), ids=str)
def test_docs_readme_mentions_every_make_target(target):
    if target == "help":
        assert "make help" in README
        return
    assert re.search(rf"make {re.escape(target)}\b", README), f"README never mentions make {target}"


def test_docs_help_imports_no_heavy_module():
    # --help stays fast: the database, DuckDB, Spark and web modules load inside commands.
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from cli import cli; "
        "CliRunner().invoke(cli, ['--help']); "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('psycopg', 'psycopg_pool', 'duckdb', 'pyarrow', 'pyspark', 'fastapi', 'jinja2'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT, check=True
    )
    assert result.stdout.strip() == ""


def command_options(group: click.Group, prefix: tuple[str, ...] = ()):
    """(command path, its long names) for every option of every command, the root's included.

    A flag pair (--bom/--no-bom) is one option: the README may name either form.
    """
    commands = [(prefix, group)]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from command_options(command, (*prefix, name))
        else:
            commands.append(((*prefix, name), command))
    for path, command in commands:
        for parameter in command.params:
            names = [
                name
                for name in (*parameter.opts, *parameter.secondary_opts)
                if name.startswith("--") and name != "--help"
            ]
            if names:
                yield path, tuple(names)


OPTIONS = sorted(set(command_options(cli)))


@pytest.mark.parametrize(
    "command, names", OPTIONS, ids=[" ".join((*command, names[0])) for command, names in OPTIONS]
)
def test_docs_readme_names_every_option(command, names):
    assert any(re.search(rf"{re.escape(name)}\b", README) for name in names), (
        f"README.md never names {'/'.join(names)} (of `python cli.py {' '.join(command)}`)"
    )
