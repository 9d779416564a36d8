"""make bench, section api: POST /api/v1/expenses under 16 concurrent clients vs direct inserts.

The API runs as `python cli.py serve` in its own process; 16 client threads in this (second)
process post single expenses over loopback HTTP with keep-alive for a bounded time. The
baseline, in the same run on the same scratch database, is the same single-row insert sent
straight to PostgreSQL by 16 psycopg connections from this process. Both fire the budget
alert trigger (the user has a budget on the key, set high so it never crosses).

Targets: the API keeps at least half of the direct-insert throughput (time per request at
most 2x), and its p99 latency stays under 50 ms.
"""

import contextlib
import http.client
import json
import statistics
import subprocess
import sys
import threading
import time

import psycopg

from bench import PROJECT_DIR, Figure, section
from tracker.everyday.tokens import create_token
from tracker.everyday.users import add_user

CLIENTS = 16
WARM_UP_SECONDS = 1.0
MEASURE_SECONDS = 8.0
REQUESTS_FOR_FIGURE = 1000  # the throughput figure is the time to serve this many
P99_TARGET_SECONDS = 0.050
START_TIMEOUT_SECONDS = 60


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_clients(make_call, seconds: float) -> list[float]:
    """CLIENTS threads, thread i calling make_call(i)() in a loop; every call's latency."""
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[BaseException] = []
    start = threading.Barrier(CLIENTS + 1)
    stop_at = [0.0]

    def client(index: int) -> None:
        try:
            call, close = make_call(index)
            try:
                start.wait()
                while time.perf_counter() < stop_at[0]:
                    began = time.perf_counter()
                    call()
                    latencies[index].append(time.perf_counter() - began)
            finally:
                close()
        except BaseException as exc:
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + seconds + 60
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait()
    stop_at[0] = time.perf_counter() + seconds
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}")
    return [value for values in latencies for value in values]


def _summary(latencies: list[float], seconds: float) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    rate = len(ordered) / seconds
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return rate, p50, p99


def _setup(url: str) -> tuple[int, list[tuple[int, str]]]:
    """The category, and (user id, token) for each client."""
    users = []
    with psycopg.connect(url, autocommit=True) as conn:
        category_id = conn.execute(
            "insert into categories (name) values ('Bench') returning id"
        ).fetchone()[0]
        for number in range(CLIENTS):
            user = add_user(conn, f"Bench User {number}", f"bench{number}@example.com", "INR")
            conn.execute(
                "insert into budgets (user_id, category_id, month, amount)"
                " values (%s, %s, date '2025-05-01', 9999999999)",
                [user.id, category_id],
            )
            users.append((user.id, create_token(conn, user.id, "bench").token))
    return category_id, users


def _start_api(url: str, port: int, log_path) -> subprocess.Popen:
    # The child writes to its own copy of the descriptor; ours closes when Popen returns.
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(PROJECT_DIR / "cli.py"),
                "--database-url",
                url,
                "serve",
                "--port",
                str(port),
                "--pool-size",
                str(CLIENTS),
                "--no-access-log",
            ],
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}; see {log_path}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/health")
            if connection.getresponse().status == 200:
                connection.close()
                return process
        except OSError:
            pass
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"the API did not start within {START_TIMEOUT_SECONDS} s; see {log_path}")


@section("api", "POST expenses over HTTP, 16 clients: >= 0.5x direct inserts, p99 < 50 ms")
def bench_api(ctx) -> list[Figure]:
    with ctx.scratch_database("api") as url:
        category_id, users = _setup(url)
        body = json.dumps(
            {"category": category_id, "amount": "12.34", "date": "2025-05-15", "note": "bench"}
        ).encode()
        port = _free_port()
        process = _start_api(url, port, ctx.workdir / "api.log")
        try:

            def http_call(index):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                headers = {
                    "Authorization": f"Bearer {users[index][1]}",
                    "Content-Type": "application/json",
                }

                def call():
                    connection.request("POST", "/api/v1/expenses", body=body, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    if response.status != 201:
                        raise RuntimeError(f"POST answered {response.status}")

                return call, connection.close

            _run_clients(http_call, WARM_UP_SECONDS)
            api_latencies = _run_clients(http_call, MEASURE_SECONDS)
        finally:
            process.terminate()
            process.wait(timeout=30)

        def direct_call(index):
            conn = psycopg.connect(url, autocommit=True)
            params = [users[index][0], category_id, "12.34", "2025-05-15", "bench"]

            def call():
                conn.execute(
                    "insert into expenses (user_id, category_id, amount, date, note)"
                    " values (%s, %s, %s, %s, %s)",
                    params,
                )

            return call, conn.close

        _run_clients(direct_call, WARM_UP_SECONDS)
        direct_latencies = _run_clients(direct_call, MEASURE_SECONDS)
        with psycopg.connect(url) as conn:
            rows = conn.execute("select count(*) from expenses").fetchone()[0]

    api_rate, api_p50, api_p99 = _summary(api_latencies, MEASURE_SECONDS)
    direct_rate, direct_p50, direct_p99 = _summary(direct_latencies, MEASURE_SECONDS)
    ctx.echo(
        f"  API    : {api_rate:,.0f} requests/s, p50 {api_p50 * 1000:.1f} ms, "
        f"p99 {api_p99 * 1000:.1f} ms ({CLIENTS} clients, {MEASURE_SECONDS:.0f} s)"
    )
    ctx.echo(
        f"  direct : {direct_rate:,.0f} inserts/s, p50 {direct_p50 * 1000:.1f} ms, "
        f"p99 {direct_p99 * 1000:.1f} ms"
    )
    ctx.echo(
        f"  API / direct throughput: {api_rate / direct_rate:.2f} (target >= 0.50); "
        f"{rows:,} expenses written"
    )
    return [
        Figure(
            "api",
            f"{REQUESTS_FOR_FIGURE:,} POST /api/v1/expenses, {CLIENTS} clients",
            REQUESTS_FOR_FIGURE / api_rate,
            baseline_label=f"same inserts via psycopg, {CLIENTS} connections",
            baseline_seconds=REQUESTS_FOR_FIGURE / direct_rate,
            max_ratio=2.0,
            note=f"{api_rate:,.0f} vs {direct_rate:,.0f} per s",
        ),
        Figure(
            "api",
            "p99 latency of POST /api/v1/expenses",
            api_p99,
            max_seconds=P99_TARGET_SECONDS,
            note=f"p50 {api_p50 * 1000:.1f} ms",
        ),
    ]
