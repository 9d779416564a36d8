"""The README's everyday commands run, in the order shown, on the sample data."""

import re
import shlex
from pathlib import Path

from everyday_support import query, scalar

PROJECT = Path(__file__).resolve().parent.parent


def everyday_commands() -> list[list[str]]:
    """The `python cli.py ...` lines of the everyday-commands block, continuation lines joined."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section: everyday commands -->", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    joined = block.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[:2] == ["python", "cli.py"], line
            commands.append(words[2:])
    return commands


def test_readme_everyday_examples_run_in_order_on_the_sample_data(run_cli, seeded_url, monkeypatch):
    monkeypatch.chdir(PROJECT)  # examples/statement.csv is a path relative to the project
    commands = everyday_commands()
    assert len(commands) > 25
    outputs = {}
    for words in commands:
        result = run_cli(seeded_url, *words)
        assert result.exit_code == 0, (words, result.output)
        outputs[" ".join(words[:2])] = result.output
    assert scalar(seeded_url, "select acknowledged_at is not null from alerts where id = 1")
    assert (
        "Alert 2: Budget exceeded for Shopping for May 2025."
        in outputs["import examples/statement.csv"]
    )
    assert query(seeded_url, "select count(*) from users where email like 'asha%%'") == [(0,)]
    assert scalar(seeded_url, "select count(*) from categories where name = 'Entertainment'") == 0
