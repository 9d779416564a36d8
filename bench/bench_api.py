"""make bench, section api: POST /api/v1/expenses under 16 concurrent clients vs direct inserts.

The API runs as `python cli.py serve` in its own process; 16 clients in this (second) process
post single expenses over loopback HTTP with keep-alive for a bounded time. The baseline, in
the same run on the same scratch database, is the same single-row insert sent straight to
PostgreSQL by 16 psycopg connections from this process. Both fire the budget alert trigger
(the user has a budget on the key, set high so it never crosses).

The clients cost the shared cores as little as each side allows, alike: the 16 HTTP clients
are asyncio connections on one event loop that send a prepared request and read the status
line, the headers and a Content-Length body (http.client's header parsing in 16 threads cost
about twice as much CPU per request as the server-side difference being measured, and its
threads contended for this process's GIL); the 16 direct clients are psycopg connections on
16 threads, as before (psycopg's async connections measured no cheaper). Each costs this
process about 0.05-0.07 ms of CPU per request.

Besides requests/s and latency it prints the CPU time each side costs per request: the API
server's process, the database backends, and this process (Linux /proc; omitted elsewhere).
On a loaded machine wall time is distorted; CPU per request much less so.

Targets: the API keeps at least half of the direct-insert throughput (time per request at
most 2x), and its p99 latency stays under 50 ms.
"""

import asyncio
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

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
CPU_PARTS = ("server", "database", "clients")


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


async def _http_clients(port: int, requests: list[bytes], seconds: float) -> list[float]:
    """One keep-alive connection per prepared request, each posting it in a loop for `seconds`;
    every call's latency. Anything but a 201 stops the run."""
    loop = asyncio.get_running_loop()
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in requests]
    latencies: list[list[float]] = [[] for _ in requests]
    stop_at = loop.time() + seconds

    async def client(index: int) -> None:
        reader, writer = connections[index]
        request, found = requests[index], latencies[index]
        while loop.time() < stop_at:
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            answer = await reader.readexactly(length)
            if status != b"201":
                raise RuntimeError(f"POST answered {status.decode()}: {answer[:200]!r}")
            found.append(time.perf_counter() - began)

    try:
        await asyncio.gather(*(client(index) for index in range(len(requests))))
    finally:
        for _, writer in connections:
            writer.close()
    return [value for values in latencies for value in values]


def _cpu_seconds(pids) -> float | None:
    """User + system CPU seconds of these processes so far (Linux /proc), else None."""
    total = 0.0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return total


def _backend_pids(url: str) -> list[int]:
    """The server processes of the connections to url's database (the baseline's and the API's)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return [
            row[0]
            for row in conn.execute(
                "select pid from pg_stat_activity"
                " where datname = current_database() and pid <> pg_backend_pid()"
            )
        ]


@contextlib.contextmanager
def _cpu_per_request(url: str, server_pid: int | None, cost: dict):
    """The CPU the block cost per request (cost["requests"] set by the block), in ms, into cost:
    "server" (the API process), "database" (its backends) and "clients" (this process)."""
    backends = _backend_pids(url)

    def now():
        server = _cpu_seconds([server_pid]) if server_pid else None
        return server, _cpu_seconds(backends), time.process_time()

    before = now()
    yield
    after = now()
    for name, start, end in zip(CPU_PARTS, before, after, strict=True):
        if start is not None and end is not None and cost["requests"]:
            cost[name] = (end - start) / cost["requests"] * 1000


def _cpu_text(cost: dict) -> str:
    parts = [
        f"{name} {cost[name]:.2f}" for name in ("server", "database", "clients") if name in cost
    ]
    return f"; CPU ms per request: {', '.join(parts)}" if parts else ""


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
        requests = [
            (
                f"POST /api/v1/expenses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
            for _, token in users
        ]
        api_cost: dict = {}
        try:
            asyncio.run(_http_clients(port, requests, WARM_UP_SECONDS))
            with _cpu_per_request(url, process.pid, api_cost):
                api_latencies = asyncio.run(_http_clients(port, requests, MEASURE_SECONDS))
                api_cost["requests"] = len(api_latencies)
        finally:
            process.terminate()
            process.wait(timeout=30)

        # Opened once for warm-up and measurement, as the API's pool is.
        direct_connections = [psycopg.connect(url, autocommit=True) for _ in range(CLIENTS)]

        def direct_call(index):
            conn = direct_connections[index]
            params = [users[index][0], category_id, "12.34", "2025-05-15", "bench"]

            def call():
                conn.execute(
                    "insert into expenses (user_id, category_id, amount, date, note)"
                    " values (%s, %s, %s, %s, %s)",
                    params,
                )

            return call, lambda: None

        try:
            _run_clients(direct_call, WARM_UP_SECONDS)
            direct_cost: dict = {}
            with _cpu_per_request(url, None, direct_cost):
                direct_latencies = _run_clients(direct_call, MEASURE_SECONDS)
                direct_cost["requests"] = len(direct_latencies)
        finally:
            for conn in direct_connections:
                conn.close()
        with psycopg.connect(url) as conn:
            rows = conn.execute("select count(*) from expenses").fetchone()[0]

    api_rate, api_p50, api_p99 = _summary(api_latencies, MEASURE_SECONDS)
    direct_rate, direct_p50, direct_p99 = _summary(direct_latencies, MEASURE_SECONDS)
    ctx.echo(
        f"  API    : {api_rate:,.0f} requests/s, p50 {api_p50 * 1000:.1f} ms, "
        f"p99 {api_p99 * 1000:.1f} ms ({CLIENTS} clients, {MEASURE_SECONDS:.0f} s)"
        f"{_cpu_text(api_cost)}"
    )
    ctx.echo(
        f"  direct : {direct_rate:,.0f} inserts/s, p50 {direct_p50 * 1000:.1f} ms, "
        f"p99 {direct_p99 * 1000:.1f} ms{_cpu_text(direct_cost)}"
    )
    ctx.echo(
        f"  API / direct throughput: {api_rate / direct_rate:.2f} (target >= 0.50); "
        f"{rows:,} expenses written"
    )
    api_cpu, direct_cpu = (
        sum(cost.get(name, 0.0) for name in CPU_PARTS) for cost in (api_cost, direct_cost)
    )
    if api_cpu and direct_cpu:
        # What the throughput ratio tends to when the cores are the limit and nothing else
        # runs on them; on a busy machine the scheduler's shares move the measured one.
        ctx.echo(f"  direct / API CPU per request: {direct_cpu / api_cpu:.2f} (information)")
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
