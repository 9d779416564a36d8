"""`pip install .` gives a working `tracker` command that finds the project in the current folder.

The package is built from a copy of the files pyproject.toml packages (so the checkout gets no
build/ or egg-info), into a throwaway venv that sees this venv's packages through a .pth file:
no download, no dependency resolution (`--no-deps --no-build-isolation`).
"""

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PACKAGED = ["pyproject.toml", "README.md", "cli.py", "tracker"]


def _install(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in PACKAGED:
        if (PROJECT / name).is_dir():
            shutil.copytree(
                PROJECT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(PROJECT / name, source / name)
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env_dir], check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # This venv's packages (click, psycopg, setuptools, ...) after the new venv's own.
    (Path(purelib) / "outer_venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", python, "install", "--quiet"),
            *("--no-deps", "--no-build-isolation", "--no-index", str(source)),
        ],
        check=True,
        capture_output=True,
    )
    return env_dir / "bin" / "tracker"


def _environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.pop("TRACKER_PROJECT_DIR", None)
    return {**env, **extra}


def test_pip_install_gives_a_tracker_command_that_uses_the_current_folder(tmp_path):
    tracker = _install(tmp_path)
    assert tracker.exists()

    help_text = subprocess.run(
        [tracker, "--help"], capture_output=True, text=True, env=_environment()
    )
    assert help_text.returncode == 0, help_text.stderr
    assert "db-init" in help_text.stdout and "export" in help_text.stdout

    # The report's template is package data: it must be installed next to the code.
    templates = list(tmp_path.glob("env/lib/python*/site-packages/tracker/reports/templates/*"))
    assert [path.name for path in templates] == ["report.html.j2"]

    # From a project folder, the installed command uses that folder (its .pgdata/), not
    # site-packages. `db status` never starts the server: a stopped one exits 1.
    project = tmp_path / "project"
    (project / "queries").mkdir(parents=True)
    (project / "database").mkdir()
    status = subprocess.run(
        [tracker, "db", "status"], cwd=project, capture_output=True, text=True, env=_environment()
    )
    assert "Source:     private server" in status.stdout, status.stderr
    assert f"{project}/.pgdata" in status.stdout or "tracker-pg-" in status.stdout
    assert "site-packages" not in status.stdout
    assert status.returncode == 1, status.stdout + status.stderr

    # TRACKER_PROJECT_DIR names the project from anywhere.
    elsewhere = subprocess.run(
        [tracker, "db", "status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_environment(TRACKER_PROJECT_DIR=str(project)),
    )
    assert f"{project}/.pgdata" in elsewhere.stdout or "tracker-pg-" in elsewhere.stdout
