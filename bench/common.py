"""Shared set-up for the benchmarks: a fresh database, the tool under gunicorn, a platform that
signs launches, a load driver with bounded runs, and CPU accounting.

Everything runs on loopback; every run is bounded in time and stops by itself.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SECRET = "bench-secret-" + "b" * 40
LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh, migrated database: 'sqlite' (a temp file) or 'postgresql' (dropped after)."""
    from tests.platform.databases import fresh_database

    with fresh_database(None if kind == "sqlite" else PG_SERVER, prefix="tsunagu_bench") as url:
        yield url


class Platform:
    """The bench's LMS: a key, its JWKS served on loopback, and id_tokens signed on demand."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex
        self.port = free_port()
        self.issuer = f"http://localhost:{self.port}"
        self.client_id = "bench-client"
        self.deployment_id = "1"
        numbers = self.key.public_key().public_numbers()

        def b64(n: int) -> str:
            import base64

            return (
                base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big"))
                .rstrip(b"=")
                .decode()
            )

        self.jwks = {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": self.kid,
                    "alg": "RS256",
                    "use": "sig",
                    "n": b64(numbers.n),
                    "e": b64(numbers.e),
                }
            ]
        }
        self.pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._server: ThreadingHTTPServer | None = None

    def serve(self) -> None:
        body = json.dumps(self.jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def register(self, database_url: str, tool_base_url: str) -> None:
        from lti_tool.db import Database
        from lti_tool.lti.keys import ensure_key
        from lti_tool.lti.models import RegisteredVia
        from lti_tool.lti.registration import save_platform

        db = Database(database_url)
        with db.session_scope() as session:
            ensure_key(session, SECRET)
            save_platform(
                session,
                issuer=self.issuer,
                client_id=self.client_id,
                name="Bench LMS",
                auth_login_url=self.issuer + "/auth",
                auth_token_url=self.issuer + "/token",
                auth_audience=None,
                jwks_url=self.issuer + "/jwks",
                product_family_code="bench",
                deployment_ids=[self.deployment_id],
                registered_via=RegisteredVia.MANUAL,
            )
        db.engine.dispose()

    def id_token(
        self,
        sub: str,
        nonce: str,
        role: str,
        target: str,
        course: str = "bench-course",
        link: str = "rl-1",
        custom: dict[str, str] | None = None,
    ) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": sub,
            "iat": now,
            "exp": now + 60,
            "nonce": nonce,
            "name": f"Trainee {sub[-4:]}",
            LTI + "message_type": "LtiResourceLinkRequest",
            LTI + "version": "1.3.0",
            LTI + "deployment_id": self.deployment_id,
            LTI + "target_link_uri": target,
            LTI + "roles": [MEMBERSHIP + role],
            LTI + "context": {
                "id": course,
                "title": "外国人支援コーディネーター養成研修",
                "type": ["CourseSection"],
            },
            LTI + "resource_link": {"id": link, "title": "Tsunagu"},
            LTI + "launch_presentation": {"locale": "ja"},
        }
        if custom:
            body[LTI + "custom"] = custom
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


@contextmanager
def tool_server(database_url: str, *, workers: int = 2) -> Iterator[str]:
    """The tool under gunicorn (2 workers × 4 threads), as `make run` and Docker serve it."""
    from lti_tool.cli import gunicorn_tmp_dir_args

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as instance:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET,
            "TOOL_BASE_URL": base,
            "INSTANCE_DIR": instance,
            "LOG_LEVEL": "WARNING",
            "CONTENT_DIR": os.environ.get("BENCH_CONTENT_DIR", str(ROOT / "content")),
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(workers),
                "--worker-class",
                os.environ.get("BENCH_WORKER_CLASS", "gthread"),
                "--threads",
                os.environ.get("BENCH_THREADS", "4"),
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                *gunicorn_tmp_dir_args(),
                *os.environ.get("BENCH_GUNICORN_ARGS", "").split(),
                "lti_tool.wsgi:app",
            ],
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    status, _, _ = request("GET", base + "/health")
                    if status == 200:
                        break
                except OSError:
                    time.sleep(0.2)
            else:
                raise RuntimeError("the tool did not start")
            yield base
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)


class _Connection:
    """One keep-alive HTTP/1.1 connection, spoken over a plain socket: the load driver shares
    the 2 cores with the tool, and this costs it about a third of what http.client does."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = f"{host}:{port}".encode()
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionResetError("the server closed the connection")
        self.buffer += data

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        return self._take(end + 2)[:-2]

    def exchange(self, message: bytes) -> tuple[int, dict[str, str], bytes, bool]:
        self.sock.sendall(message)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = self._take(end + 4)[:-4].decode("latin-1").split("\r\n")
        version, status = head[0].split(" ", 2)[:2]
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self._line().split(b";")[0], 16):
                chunks.append(self._take(size))
                self._line()
            while self._line():  # trailers, up to the empty line
                pass
            body = b"".join(chunks)
        else:
            raise RuntimeError("a response with neither Content-Length nor chunks")
        closes = version == "HTTP/1.0" or headers.get("connection", "").lower() == "close"
        return int(status), headers, body, closes


_connections: dict[tuple[str, int, int], _Connection] = {}


def request(
    method: str, url: str, body: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request, reusing this process's connection to the host as a browser does
    (keep-alive; a server that closes it gets a new one). Header names come back lowercase."""
    parts = urlsplit(url)
    key = (parts.hostname or "", parts.port or 80, os.getpid())
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    payload = urlencode(body).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {key[0]}:{key[1]}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append("Content-Type: application/x-www-form-urlencoded")
    if body is not None or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(payload)}")
    message = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    for attempt in (1, 2):
        conn = _connections.get(key)
        if conn is None:
            conn = _connections[key] = _Connection(key[0], key[1])
        try:
            status, found, data, closes = conn.exchange(message)
        except (ConnectionError, ValueError, IndexError):
            # Closed while idle (a keep-alive timeout) or mid-answer: once more, anew.
            conn.close()
            _connections.pop(key, None)
            if attempt == 2:
                raise
            continue
        if closes:
            conn.close()
            _connections.pop(key, None)
        return status, found, data
    raise AssertionError("unreachable")


@contextmanager
def app_server(
    source: str, files: dict[str, bytes] | None = None
) -> Iterator[tuple[str, list[int]]]:
    """Another Flask app (`source`, a module defining `app`, beside `files`) under gunicorn as
    the tool is served (2 workers × 4 threads): its base URL and process ids."""
    from lti_tool.cli import gunicorn_tmp_dir_args

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    module = f"bench_app_{port}"
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, f"{module}.py").write_text(source)
        for name, data in (files or {}).items():
            Path(folder, name).write_bytes(data)
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class"),
                *("gthread", "--threads", "4", "--bind", f"127.0.0.1:{port}"),
                *gunicorn_tmp_dir_args(),
                *("--chdir", folder, "--log-level", "warning", f"{module}:app"),
            ],
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    request("GET", base + "/")  # any answer: it listens
                    break
                except OSError:
                    time.sleep(0.2)
            pids = subprocess.run(
                ["pgrep", "-f", f"{module}:app"], capture_output=True, text=True
            ).stdout.split()
            yield base, [int(pid) for pid in pids]
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)


def login(
    platform: Platform, login_url: str, sub: str, target: str
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The LMS's login initiation: the query of the tool's 302 to the platform, and its headers."""
    status, headers, _ = request(
        "POST",
        login_url,
        {
            "iss": platform.issuer,
            "login_hint": sub,
            "target_link_uri": target,
            "client_id": platform.client_id,
            "lti_deployment_id": platform.deployment_id,
            "lti_message_hint": "bench",
        },
    )
    if status != 302:
        raise RuntimeError(f"login answered {status}")
    return parse_qs(urlsplit(headers["location"]).query), headers


def launch(
    platform: Platform,
    base: str,
    sub: str,
    role: str = "Learner",
    link: str = "rl-1",
    custom: dict[str, str] | None = None,
) -> tuple[str, bytes]:
    """One complete launch: login (302), launch (303), first page (200). Returns its URL, body."""
    query, _ = login(platform, base + "/lti/login", sub, base + "/lti/launch")
    token = platform.id_token(
        sub, query["nonce"][0], role, base + "/lti/launch", link=link, custom=custom
    )
    status, headers, body = request(
        "POST", base + "/lti/launch", {"id_token": token, "state": query["state"][0]}
    )
    if status != 303:
        raise RuntimeError(f"launch answered {status}: {body[:200]!r}")
    landing = (
        base + headers["location"] if headers["location"].startswith("/") else headers["location"]
    )
    status, _, page = request("GET", landing)
    if status != 200:
        raise RuntimeError(f"first page answered {status}")
    return landing, page


def token_in(url: str) -> str:
    return parse_qs(urlsplit(url).query)["ts"][0]


def csrf_in(page: bytes) -> str:
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    if not found:
        raise RuntimeError("no CSRF token on the page")
    return found.group(1).decode()


@dataclass
class RunResult:
    count: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def line(self, label: str) -> str:
        return (
            f"{label}: {self.count} in {self.seconds:.1f} s = {self.per_second:.0f}/s, "
            f"p50 {self.percentile(0.5):.1f} ms, p99 {self.percentile(0.99):.1f} ms, "
            f"errors {self.errors}"
        )


def _driver(task: Callable[[int, int], None], index: int, seconds: float, queue: Any) -> None:
    latencies: list[float] = []
    errors = 0
    end = time.monotonic() + seconds
    iteration = 0
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            task(index, iteration)
            latencies.append((time.perf_counter() - started) * 1000)
        except Exception as exc:
            errors += 1
            if errors <= 3:
                print(f"driver {index}: {exc}", file=sys.stderr)
        iteration += 1
    queue.put((latencies, errors))


def run_load(task: Callable[[int, int], None], *, processes: int, seconds: float) -> RunResult:
    """Run `task(process_index, iteration)` in a loop in each process, for `seconds`."""
    queue: Any = mp.get_context("fork").Queue()
    workers = [
        mp.get_context("fork").Process(target=_driver, args=(task, i, seconds, queue))
        for i in range(processes)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    elapsed = time.monotonic() - started
    latencies = [value for lat, _ in results for value in lat]
    return RunResult(len(latencies), sum(e for _, e in results), elapsed, latencies)


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU of these processes and their children (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    return total


class ProcessCpu:
    """CPU used over a run by a changing set of processes (`find` lists them): those there at
    the start, and those started during the run (a pool opening connections to PostgreSQL
    under load starts new server processes)."""

    def __init__(self, find: Callable[[], list[int]]) -> None:
        self._find = find
        self._start = {pid: cpu_seconds([pid]) for pid in find()}

    def used(self) -> float:
        now = {pid: cpu_seconds([pid]) for pid in self._find()}
        return sum(seconds - self._start.get(pid, 0.0) for pid, seconds in now.items())


def machine_cpu_seconds() -> float:
    """User+system CPU of the whole machine so far (Linux /proc/stat), all cores together."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system = (int(value) for value in fields[:3])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def cpu_split(count: int, tool: float, postgres: float, machine: float) -> str:
    """Where the machine's CPU went, per unit of work: tool, PostgreSQL, the rest (the load
    driver and the bench platform, which sign and send what an LMS would)."""
    rest = max(0.0, machine - tool - postgres)
    per = 1000 / count if count else 0.0
    return (
        f"CPU per unit: tool {tool * per:.2f} ms, PostgreSQL {postgres * per:.2f} ms, "
        f"driver and the rest {rest * per:.2f} ms"
    )


def gunicorn_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "lti_tool.wsgi:app"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
