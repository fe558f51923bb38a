"""Launched trainees reading unit pages (each view records progress) against the tool under
gunicorn (2 workers). Prints pages/s and p50/p99 per page, on SQLite and PostgreSQL.

    .venv/bin/python bench/pages.py [--seconds 20] [--processes 4] [--trainees 60]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from common import (
    ROOT,
    Platform,
    ProcessCpu,
    cpu_split,
    database,
    gunicorn_pids,
    launch,
    machine_cpu_seconds,
    postgres_pids,
    request,
    run_load,
    token_in,
    tool_server,
)

sys.path.insert(0, str(ROOT))


def unit_paths() -> list[str]:
    import os

    from lti_tool.catalog.loader import load_catalog

    catalog = load_catalog(Path(os.environ.get("BENCH_CONTENT_DIR", ROOT / "content")))
    return [f"/modules/{m.id}/{u.id}" for m in catalog.modules for u in m.units]


def bench(backend: str, seconds: float, processes: int, trainees: int) -> None:
    paths = unit_paths()
    platform = Platform()
    platform.serve()
    with database(backend) as url, tool_server(url) as base:
        platform.register(url, base)
        tokens = []
        for index in range(trainees):
            landing, _ = launch(platform, base, f"reader-{index:03d}")
            tokens.append(token_in(landing))
        tool_meter, pg_meter = ProcessCpu(gunicorn_pids), ProcessCpu(postgres_pids)
        machine_before = machine_cpu_seconds()

        def read(index: int, iteration: int) -> None:
            rng = random.Random(index * 100_003 + iteration)
            token = tokens[rng.randrange(len(tokens))]
            status, _, body = request("GET", f"{base}{rng.choice(paths)}?ts={token}")
            if status != 200 or b"unit-end" not in body:
                raise RuntimeError(f"unit page answered {status}")

        result = run_load(read, processes=processes, seconds=seconds)
        tool_cpu = tool_meter.used()
        pg_cpu = pg_meter.used() if backend == "postgresql" else 0.0
        machine_cpu = machine_cpu_seconds() - machine_before
    platform.stop()
    print(result.line(f"{backend:10} unit pages"))
    if result.count:
        print(
            f"{backend:10} tool CPU {1000 * tool_cpu / result.count:.2f} ms per page "
            f"({result.count / tool_cpu:.0f} pages/s per tool core)"
        )
        print(f"{backend:10} {cpu_split(result.count, tool_cpu, pg_cpu, machine_cpu)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--trainees", type=int, default=60)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        bench(backend, args.seconds, args.processes, args.trainees)
        time.sleep(1)


if __name__ == "__main__":
    main()
