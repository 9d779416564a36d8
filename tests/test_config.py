"""Which database the tool picks, and how connection strings are shown."""

import pytest

from tracker.plumbing import config


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "PROJECT_DIR", tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return tmp_path


def test_config_option_beats_environment_and_dotenv(project, monkeypatch):
    (project / ".env").write_text("DATABASE_URL=postgresql://dotenv@/x\n")
    monkeypatch.setenv("DATABASE_URL", "postgresql://env@/x")
    choice = config.choose_database("postgresql://option@/x")
    assert (choice.url, choice.source) == ("postgresql://option@/x", "--database-url")


def test_config_environment_beats_dotenv(project, monkeypatch):
    (project / ".env").write_text("DATABASE_URL=postgresql://dotenv@/x\n")
    monkeypatch.setenv("DATABASE_URL", "postgresql://env@/x")
    assert config.choose_database().source == "DATABASE_URL"


def test_config_dotenv_is_read_when_nothing_else_is_set(project):
    (project / ".env").write_text("# local settings\nDATABASE_URL=postgresql://dotenv@/x\n")
    choice = config.choose_database()
    assert (choice.url, choice.source) == ("postgresql://dotenv@/x", ".env")


def test_config_private_server_when_nothing_is_set(project):
    choice = config.choose_database()
    assert (choice.url, choice.source) == (None, "private server")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgresql://tracker:s3cret@db.example:5432/tracker?sslmode=require",
            "postgresql://tracker:***@db.example:5432/tracker?sslmode=require",
        ),
        ("postgres://tracker:p%40ss@h1,h2/db", "postgres://tracker:***@h1,h2/db"),
        (
            "postgresql://tracker@/db?host=/tmp/run&password=s3cret",
            "postgresql://tracker@/db?host=/tmp/run&password=***",
        ),
        (
            "host=db.example user=tracker password='s3 cret' dbname=tracker",
            "host=db.example user=tracker password=*** dbname=tracker",
        ),
        ("postgresql://tracker@/db?host=/tmp/run", "postgresql://tracker@/db?host=/tmp/run"),
        ("postgresql//bob:s3cretpw@host/db", "postgresql//bob:***@host/db"),
        ("POSTGRESQL://bob:s3cretpw@host/db", "POSTGRESQL://bob:***@host/db"),
        ("postgresql://bob:s3cret pw@host/db", "postgresql://bob:***@host/db"),
        ("postgresql://bob:p@ss:w@rd@host/db", "postgresql://bob:***@host/db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
    ],
)
def test_config_mask_url_hides_every_password_form(url, masked):
    assert config.mask_url(url) == masked


@pytest.mark.parametrize(
    "url",
    [
        "postgresql//bob:s3cretpw@host/db",
        "POSTGRESQL://bob:s3cretpw@host/db",
        "postgresql://bob:s3cret pw@host/db",
        "postgresql://bob:s3cret%pw@host/db",
        "host=h user=bob password=s3cretpw bogus",
    ],
)
def test_config_malformed_url_error_never_shows_the_password(run_cli, url):
    result = run_cli(url, "db", "status")
    assert result.exit_code == 1
    assert "s3cret" not in result.output
    assert result.stderr.startswith("Error: --database-url is not a valid PostgreSQL connection")
    assert result.stderr.count("\n") == 1
