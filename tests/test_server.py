"""The private PostgreSQL server, started in a folder of its own (not the shared one)."""

import os
import stat
import subprocess

import psycopg
import pytest

from tracker.server import PrivateServer, binary


@pytest.fixture
def own_server(tmp_path):
    server = PrivateServer(tmp_path / "pg")
    yield server
    server.stop()


def test_server_initializes_starts_reuses_and_stops(own_server):
    assert own_server.ensure_running() is True
    assert own_server.ensure_running() is False  # running: reused, not started again
    with psycopg.connect(own_server.url("postgres")) as conn:
        assert conn.execute("show unix_socket_permissions").fetchone()[0] == "0700"
        assert conn.execute("show listen_addresses").fetchone()[0] == ""
    assert own_server.stop() is True
    assert own_server.status().running is False
    assert own_server.stop() is False
    # Started again on the same data.
    assert own_server.ensure_running() is True
    assert own_server.status().initialized


def test_server_socket_is_private_to_its_owner(own_server):
    own_server.ensure_running()
    socket_dir = own_server.socket_dir
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    socket = socket_dir / ".s.PGSQL.5432"
    assert stat.S_IMODE(socket.stat().st_mode) == 0o700
    if os.geteuid() == 0:
        # Another OS user must not reach the trusted postgres role.
        result = subprocess.run(
            ["runuser", "-u", "nobody", "--", binary("psql"), "-h", str(socket_dir),
             "-U", "postgres", "-d", "postgres", "-Atc", "select 1"],
            capture_output=True, text=True,
        )
        assert result.returncode != 0
        assert "Permission denied" in result.stderr
