"""Shared fixtures: real PostgreSQL (private server, or DATABASE_URL's), a fresh database per test.

Each test database is a copy of a template that was migrated (and, for the seeded one,
seeded) once per session, so a test starts in a few milliseconds from a known state.
"""

import os
import uuid

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from tracker.plumbing import db as tracker_db
from tracker.plumbing.bootstrap import initialize_database

# Unique per pytest process, so concurrent runs (and xdist workers) never share a template.
WORKER = f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


@pytest.fixture(scope="session")
def server_url() -> str:
    """A maintenance connection to the server the tests use (never a test database)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    server = tracker_db.private_server()
    server.ensure_running()
    return server.url("postgres")


def _drop_database(server_url: str, name: str) -> None:
    with tracker_db.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def _create_database(server_url: str, name: str, template: str | None = None) -> str:
    _drop_database(server_url, name)
    statement = sql.SQL("create database {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" template {}").format(sql.Identifier(template))
    with tracker_db.connect(server_url, autocommit=True) as conn:
        conn.execute(statement)
    return tracker_db.with_database(server_url, name)


@pytest.fixture(scope="session")
def empty_template(server_url) -> str:
    """Name of a template database with every migration applied and no data."""
    name = f"tracker_tpl_{WORKER}_empty"
    url = _create_database(server_url, name)
    initialize_database(url, seed=False)
    yield name
    _drop_database(server_url, name)


@pytest.fixture(scope="session")
def seeded_template(server_url) -> str:
    """Name of a template database with every migration applied and the sample seeds."""
    name = f"tracker_tpl_{WORKER}_seeded"
    url = _create_database(server_url, name)
    initialize_database(url, seed=True)
    yield name
    _drop_database(server_url, name)


@pytest.fixture
def fresh_database(server_url):
    """Factory: a new database (empty, or from a template) that is dropped after the test."""
    created = []

    def make(template: str | None = None) -> str:
        name = f"tracker_t_{uuid.uuid4().hex[:12]}"
        created.append(name)
        return _create_database(server_url, name, template)

    yield make
    for name in created:
        _drop_database(server_url, name)


@pytest.fixture
def db_url(fresh_database, empty_template) -> str:
    """URL of a fresh, fully migrated database with no rows."""
    return fresh_database(empty_template)


@pytest.fixture
def seeded_url(fresh_database, seeded_template) -> str:
    """URL of a fresh, fully migrated database holding the sample seeds."""
    return fresh_database(seeded_template)


@pytest.fixture
def conn(db_url):
    """An autocommit connection to db_url."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def run_cli():
    """Invoke cli.py in-process: run_cli(url, *args) -> click Result (url may be None)."""
    from cli import cli

    def run(url: str | None, *args: str, input: str | None = None, env: dict | None = None):
        prefix = ["--database-url", url] if url else []
        return CliRunner().invoke(
            cli, [*prefix, *args], input=input, env=env, catch_exceptions=False
        )

    return run


@pytest.fixture
def world(conn):
    """Users Aman and Priya, categories Food and Travel in the test's database; their ids
    (test_trigger, test_alert_links; a module may define its own `world`)."""
    users = conn.execute(
        "insert into users (name, email) values ('Aman', 'aman@example.com'),"
        " ('Priya', 'priya@example.com') returning id"
    ).fetchall()
    categories = conn.execute(
        "insert into categories (name) values ('Food'), ('Travel') returning id"
    ).fetchall()
    return {
        "user": users[0][0],
        "other_user": users[1][0],
        "food": categories[0][0],
        "travel": categories[1][0],
    }
