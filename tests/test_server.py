"""The private PostgreSQL server, started in a folder of its own (not the shared one)."""

import os
import stat
import subprocess

import psycopg
import pytest

from tracker.plumbing.server import PrivateServer, binary


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
            [
                "runuser",
                "-u",
                "nobody",
                "--",
                binary("psql"),
                "-h",
                str(socket_dir),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atc",
                "select 1",
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode != 0
        assert "Permission denied" in result.stderr


@pytest.fixture
def own_tmp():
    """A folder of this test's own (pytest's shared base folder is pruned by other runs)."""
    import shutil
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="tracker-server-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def long_root(tmp_path):
    """A project path long enough that the socket folder moves to /tmp/tracker-pg-<hash>."""
    root = tmp_path / ("long-project-path-" * 5) / "pg"
    server = PrivateServer(root)
    assert str(server.socket_dir).startswith("/tmp/tracker-pg-")
    return server


def test_server_refuses_a_symlink_planted_as_its_socket_folder(own_tmp):
    tmp_path = own_tmp
    from tracker.errors import TrackerError

    server = long_root(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    victim.chmod(0o755)
    before = victim.stat()
    server.socket_dir.symlink_to(victim)
    try:
        with pytest.raises(TrackerError, match="is a symbolic link or not a folder"):
            server.ensure_running()
    finally:
        server.socket_dir.unlink()
        server.stop()
    after = victim.stat()
    assert (after.st_mode, after.st_uid, after.st_gid) == (
        before.st_mode,
        before.st_uid,
        before.st_gid,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's folder")
def test_server_refuses_a_socket_folder_another_user_owns(own_tmp):
    tmp_path = own_tmp
    import pwd
    import shutil

    from tracker.errors import TrackerError

    server = long_root(tmp_path)
    nobody = pwd.getpwnam("nobody")
    server.socket_dir.mkdir(mode=0o777)
    os.chown(server.socket_dir, nobody.pw_uid, nobody.pw_gid)
    try:
        with pytest.raises(TrackerError, match="belongs to user nobody"):
            server.ensure_running()
        info = server.socket_dir.stat()
        assert info.st_uid == nobody.pw_uid
    finally:
        shutil.rmtree(server.socket_dir)
        server.stop()


def test_server_with_a_long_path_uses_a_private_folder_in_tmp(own_tmp):
    tmp_path = own_tmp
    server = long_root(tmp_path)
    try:
        assert server.ensure_running() is True
        info = server.socket_dir.lstat()
        assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
        with psycopg.connect(server.url("postgres")) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        server.stop()
        import shutil

        shutil.rmtree(server.socket_dir, ignore_errors=True)
