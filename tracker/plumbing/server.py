"""The private PostgreSQL server: binaries from the pgserver wheel, data under .pgdata/.

It listens only on a Unix socket inside its own folder; socket and folder are private to
the OS user who owns the server (mode 0700), so the trusted postgres role is reachable by
that user (and root) only. It keeps running between commands so later runs reuse it.
"""

import fcntl
import hashlib
import importlib.util
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tracker.errors import TrackerError

# postgres refuses to run as root; as root we run it as this system user.
SERVER_USER = "tracker-pg"
PORT = 5432
# Longest socket directory that still fits sun_path with "/.s.PGSQL.5432" appended.
MAX_SOCKET_DIR = 90

SETTINGS = {
    "listen_addresses": "''",
    "port": str(PORT),
    "max_connections": "200",
    "shared_buffers": "'512MB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'4GB'",
    # A crash may lose the last few commits, never corrupt data: fine for a local tool.
    "synchronous_commit": "off",
    "timezone": "'UTC'",
}


def binary_dir() -> Path:
    """Where the pgserver wheel keeps initdb, pg_ctl, postgres and psql."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise TrackerError(
            "the pgserver package is not installed. Run `make db-init` to install it."
        )
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def binary(name: str) -> str:
    """Path of one PostgreSQL program from the wheel."""
    return str(binary_dir() / name)


@dataclass(frozen=True)
class ServerStatus:
    data_dir: Path
    initialized: bool
    running: bool
    pid: int | None


class PrivateServer:
    """A PostgreSQL cluster owned by this project."""

    def __init__(self, root: Path):
        self.root = root
        self.data_dir = root / "data"
        self.log_file = root / "server.log"

    @property
    def socket_dir(self) -> Path:
        inside = self.root / "run"
        if len(str(inside)) <= MAX_SOCKET_DIR:
            return inside
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"tracker-pg-{digest}"

    def url(self, database: str) -> str:
        """Connection URL for one database on this server."""
        return f"postgresql://postgres@/{database}?host={quote(str(self.socket_dir), safe='/')}"

    def status(self) -> ServerStatus:
        initialized = (self.data_dir / "PG_VERSION").exists()
        pid = self._running_pid() if initialized else None
        return ServerStatus(self.data_dir, initialized, pid is not None, pid)

    def ensure_running(self) -> bool:
        """Initialize and start the server if needed; True when this call started it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            if self._running_pid() is not None:
                return False
            self._start()
            return True

    def stop(self) -> bool:
        """Stop the server; True when it was running."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        with self._lock():
            if self._running_pid() is None:
                return False
            self._run(binary("pg_ctl"), "-D", str(self.data_dir), "-w", "-m", "fast", "stop")
            return True

    @contextmanager
    def _lock(self):
        # Two commands starting at once must not both run initdb or pg_ctl start.
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _running_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def _initdb(self) -> None:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(mode=0o700)
        self._hand_to_server_user(self.data_dir)
        self._run(
            binary("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        # Only the postgres superuser is trusted; any other role must give its password.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all postgres trust\nlocal all all scram-sha-256\n"
        )
        settings = "".join(f"{key} = {value}\n" for key, value in SETTINGS.items())
        with open(self.data_dir / "postgresql.auto.conf", "a") as conf:
            conf.write(settings)

    def _start(self) -> None:
        socket_dir = self.socket_dir
        if socket_dir == self.root / "run":
            socket_dir.mkdir(mode=0o700, exist_ok=True)
        _make_private_dir(socket_dir)
        if _server_user() is not None:
            _open_parents(socket_dir)
        self.log_file.touch(mode=0o600)
        self.log_file.chmod(0o600)
        self._hand_to_server_user(self.log_file)
        # pg_ctl hands -o to a shell: quote the path. The socket is the owner's alone.
        options = f"-k {shlex.quote(str(socket_dir))} -c unix_socket_permissions=0700"
        self._run(
            binary("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def _run(self, *command: str) -> None:
        as_user = _server_user()
        # Switch uid, gid and groups together: keeping root's group would let a folder's
        # group bits, not its "other" bits, decide what the server user may reach.
        identity: dict[str, Any] = {}
        if as_user is not None:
            entry = pwd.getpwnam(as_user)
            identity = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.root,
            **identity,
        )
        if result.returncode != 0:
            last_line = (result.stdout.strip().splitlines() or ["no output"])[-1]
            raise TrackerError(
                f"{Path(command[0]).name} failed for the private PostgreSQL server "
                f"({last_line}). See {self.log_file} for details."
            )

    def _hand_to_server_user(self, path: Path) -> None:
        as_user = _server_user()
        if as_user is None:
            return
        entry = pwd.getpwnam(as_user)
        # Never through a link: the path is ours, but what it names must be too.
        os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        _open_parents(path)


def _open_parents(path: Path) -> None:
    """As root: add search (x, never read) for others on each parent folder that lacks it.

    The server user must reach its folders through the project path (a project under
    /root, mode 0700, would otherwise be out of its reach). The README says so.
    """
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _make_private_dir(path: Path) -> None:
    """Make path a folder only the server's OS user can use (0700), safely.

    The folder may be in a shared place such as /tmp, where any local user could have
    planted a symbolic link or a folder of their own under the predictable name first. So
    nothing here follows a link: the folder is opened with O_NOFOLLOW | O_DIRECTORY, and it
    is changed (fchmod, fchown) only through that handle, after checking that it is a real
    folder owned by us or by the server user. Anything else is refused.
    """
    as_user = _server_user()
    owner = pwd.getpwnam(as_user) if as_user is not None else None
    allowed = {os.geteuid()} | ({owner.pw_uid} if owner else set())
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise TrackerError(
            f"cannot create the server's socket folder {path}: {exc.strerror}. "
            "Check that its parent folder exists and is writable."
        ) from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        raise TrackerError(
            f"the server's socket folder {path} is a symbolic link or not a folder, "
            "which someone else may have put there. Remove it (check who made it) and run "
            "the command again."
        ) from None
    try:
        info = os.fstat(fd)
        if info.st_uid not in allowed:
            owner_name = _user_name(info.st_uid)
            raise TrackerError(
                f"the server's socket folder {path} belongs to {owner_name}, not to "
                "you, so the server cannot keep it private. Remove it (check who made it) "
                "and run the command again."
            )
        if owner is not None:
            os.fchown(fd, owner.pw_uid, owner.pw_gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def _user_name(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _server_user() -> str | None:
    """The system user to run postgres as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return SERVER_USER
