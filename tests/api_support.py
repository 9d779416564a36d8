"""Helpers for the REST API tests: a real uvicorn server on a free loopback port, users, tokens."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from tracker.everyday.tokens import create_token
from tracker.everyday.users import add_user

PROJECT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ApiServer:
    """`python cli.py serve` in a subprocess; its output goes to a log file."""

    process: subprocess.Popen
    base_url: str
    log_path: Path

    def client(self, token: str | None = None, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, as a service manager sends it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(db_url: str, log_dir: Path, *extra: str) -> ApiServer:
    """Start the API on db_url and wait until /api/health answers."""
    port = free_port()
    log_path = log_dir / f"api_{port}.log"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(PROJECT / "cli.py"),
                "--database-url",
                db_url,
                "serve",
                "--port",
                str(port),
                *extra,
            ],
            cwd=PROJECT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = ApiServer(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/api/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the API did not answer within {START_TIMEOUT_SECONDS} s:\n{server.log()}")


@dataclass(frozen=True)
class ApiUser:
    id: int
    email: str
    token: str


def new_user(db_url: str, currency: str = "INR") -> ApiUser:
    """A new user with a fresh token (unique e-mail, so tests sharing a database never meet)."""
    email = f"u{uuid.uuid4().hex[:10]}@example.com"
    with psycopg.connect(db_url, autocommit=True) as conn:
        user = add_user(conn, "Test User", email, currency)
        token = create_token(conn, user.id, "tests").token
    return ApiUser(user.id, email, token)


def sql_rows(db_url: str, statement: str, params=None) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(statement, params).fetchall()


def sql_value(db_url: str, statement: str, params=None):
    return sql_rows(db_url, statement, params)[0][0]


def assert_problem(response: httpx.Response, status: int, *fields: str) -> dict:
    """An RFC 9457 problem with this status, naming these fields, leaking nothing."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"], body
    named = {error["field"] for error in body["errors"]}
    for field in fields:
        assert field in named, body
    text = response.text.lower()
    for leak in ("traceback", "select ", "insert ", "psycopg", "password", 'file "'):
        assert leak not in text, body
    return body
