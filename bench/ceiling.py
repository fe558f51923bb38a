"""What this machine allows, measured with the same load driver as the other benchmarks:
a Flask hello-world under gunicorn (2 workers), and the tool's own /health (one SELECT 1)
and a static file. Read the launch and page numbers against these.

    .venv/bin/python bench/ceiling.py [--seconds 8] [--processes 4]
"""

from __future__ import annotations

import argparse

from common import (
    app_server,
    cpu_seconds,
    database,
    gunicorn_pids,
    request,
    run_load,
    tool_server,
)

HELLO = """from flask import Flask
app = Flask(__name__)

@app.get("/")
def hello():
    return "ok"
"""


def measure(label: str, url: str, pids: list[int], seconds: float, processes: int) -> None:
    for _ in range(20):
        request("GET", url)
    before = cpu_seconds(pids)

    def one(_index: int, _iteration: int) -> None:
        status, _, _ = request("GET", url)
        if status != 200:
            raise RuntimeError(f"{url} answered {status}")

    result = run_load(one, processes=processes, seconds=seconds)
    used = cpu_seconds(pids) - before
    print(result.line(f"{label:22} requests"))
    if result.count:
        print(f"{label:22} server CPU {1000 * used / result.count:.2f} ms per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    with app_server(HELLO) as (base, pids):
        measure("flask hello-world", base + "/", pids, args.seconds, args.processes)
    with database("sqlite") as url, tool_server(url) as base:
        pids = gunicorn_pids()
        measure("tool /health", base + "/health", pids, args.seconds, args.processes)
        measure(
            "tool static file",
            base + "/static/css/tsunagu.css",
            pids,
            args.seconds,
            args.processes,
        )


if __name__ == "__main__":
    main()
