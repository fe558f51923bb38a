"""Complete LTI launches against the tool under gunicorn (2 workers): login 302, launch POST,
first page. Prints launches/s and p50/p99 of a whole launch, on SQLite and PostgreSQL.

    .venv/bin/python bench/launch.py [--seconds 20] [--processes 4] [--backend sqlite|postgresql]

The load driver (and the platform signing each id_token with RS256) runs on the same 2 cores
as the tool; the tool's own CPU per launch is printed too, from /proc.
"""

from __future__ import annotations

import argparse
import time
import uuid

from common import (
    Platform,
    ProcessCpu,
    cpu_split,
    database,
    gunicorn_pids,
    launch,
    machine_cpu_seconds,
    postgres_pids,
    run_load,
    tool_server,
)


def bench(backend: str, seconds: float, processes: int) -> None:
    platform = Platform()
    platform.serve()
    with database(backend) as url, tool_server(url) as base:
        platform.register(url, base)
        for _ in range(20):  # warm-up: JWKS fetched, connections and templates ready
            launch(platform, base, uuid.uuid4().hex)
        tool_meter, pg_meter = ProcessCpu(gunicorn_pids), ProcessCpu(postgres_pids)
        machine_before = machine_cpu_seconds()

        def one(index: int, iteration: int) -> None:
            # 300 trainees (the FY2026 cohort size) launching again and again.
            launch(platform, base, f"trainee-{(index * 7919 + iteration) % 300:03d}")

        result = run_load(one, processes=processes, seconds=seconds)
        tool_cpu = tool_meter.used()
        pg_cpu = pg_meter.used() if backend == "postgresql" else 0.0
        machine_cpu = machine_cpu_seconds() - machine_before
    platform.stop()
    print(result.line(f"{backend:10} launches"))
    if result.count:
        print(
            f"{backend:10} tool CPU: {tool_cpu:.1f} s over {result.seconds:.1f} s "
            f"({100 * tool_cpu / result.seconds / 2:.0f}% of 2 cores), "
            f"{1000 * tool_cpu / result.count:.2f} ms per launch "
            f"(= {result.count / tool_cpu:.0f} launches/s per tool core)"
        )
        print(f"{backend:10} {cpu_split(result.count, tool_cpu, pg_cpu, machine_cpu)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        bench(backend, args.seconds, args.processes)
        time.sleep(1)


if __name__ == "__main__":
    main()
