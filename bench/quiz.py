"""300 trainees (the FY2026 target) start the completion test, answer 40 questions saving each
answer as it is given, and submit, concurrently, against the tool under gunicorn (2 workers)
with PostgreSQL. Prints attempts/s, answer saves/s, p50/p99 of a save and of a submit, and the
time for all of them.

    .venv/bin/python bench/quiz.py [--trainees 300] [--processes 6] [--backend postgresql]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import (
    ROOT,
    Platform,
    cpu_seconds,
    csrf_in,
    database,
    gunicorn_pids,
    launch,
    request,
    token_in,
    tool_server,
)

sys.path.insert(0, str(ROOT))

QUESTIONS_PER_AREA = 8
BANK_PER_AREA = 10


def bench_content(folder: Path) -> Path:
    """The test fixture's modules plus a bank of 50 single-choice questions (10 per area)."""
    content = folder / "content"
    shutil.copytree(ROOT / "tests" / "fixtures" / "content", content)
    lines = []
    for area in "ABCDE":
        for n in range(BANK_PER_AREA):
            lines.append(
                f"- id: bench-{area.lower()}{n:02d}\n  area: {area}\n  difficulty: {1 + n % 3}\n"
                f"  type: single\n"
                f'  text: {{ja: "{{問題|もんだい}} {area}{n}", en: "Question {area}{n}"}}\n'
                f'  options:\n    - {{ja: "ア", en: "A"}}\n    - {{ja: "イ", en: "B"}}\n'
                f'    - {{ja: "ウ", en: "C"}}\n    - {{ja: "エ", en: "D"}}\n'
                f'  answer: {n % 4}\n  explanation: {{ja: "{{説明|せつめい}}", en: "Why"}}\n'
                f"  sources: [S0]\n"
            )
    (content / "quiz" / "bank.yaml").write_text("".join(lines), encoding="utf-8")
    return content


def configure(platform: Platform, base: str) -> None:
    landing, _ = launch(platform, base, "instructor-0", role="Instructor")
    token = token_in(landing)
    _, _, page = request("GET", f"{base}/quiz/settings?ts={token}")
    form = {
        "ts": token,
        "csrf_token": csrf_in(page),
        "time_limit": "60",
        "attempts": "1",
        "pass_percent": "70",
        "per_page": "5",
        "grading_rule": "best",
        "review_policy": "never",
        "shuffle_questions": "on",
        "shuffle_options": "on",
    }
    form.update({f"area:{a}": str(QUESTIONS_PER_AREA) for a in "ABCDE"})
    status, _, _ = request("POST", f"{base}/quiz/settings", form)
    assert status == 303, status


def drive(base: str, sessions: list[tuple[str, str]], queue: mp.Queue) -> None:
    """Each trainee of this process in turn: start, 40 saves, submit (interleaved)."""
    timings: dict[str, list[float]] = {"start": [], "save": [], "submit": []}
    errors = 0
    states = []
    for token, csrf in sessions:
        started = time.perf_counter()
        status, headers, _ = request(
            "POST", f"{base}/quiz/start", {"ts": token, "csrf_token": csrf}
        )
        timings["start"].append((time.perf_counter() - started) * 1000)
        if status != 303:
            errors += 1
            continue
        attempt = re.search(r"/quiz/attempt/(\d+)", headers["location"]).group(1)
        _, _, page = request("GET", f"{base}/quiz/attempt/{attempt}?ts={token}")
        questions = re.findall(rb'name="question" value="([^"]+)"', page)
        states.append(
            {
                "token": token,
                "csrf": csrf,
                "attempt": attempt,
                "page": page,
                "done": 0,
                "ids": [q.decode() for q in questions],
            }
        )
    # All attempts are open: now answer, one save per answer, round-robin across trainees.
    total = 5 * QUESTIONS_PER_AREA
    for index in range(total):
        for state in states:
            if index < len(state["ids"]):
                qid = state["ids"][index]
            else:
                qid = f"bench-a{index % BANK_PER_AREA:02d}"  # ignored if not in the attempt
            started = time.perf_counter()
            status, _, _ = request(
                "POST",
                f"{base}/quiz/attempt/{state['attempt']}/save",
                {
                    "ts": state["token"],
                    "csrf_token": state["csrf"],
                    "question": qid,
                    qid: str(index % 4),
                    "go": "stay",
                },
                headers={"X-Requested-With": "fetch"},
            )
            timings["save"].append((time.perf_counter() - started) * 1000)
            errors += status != 200
    for state in states:
        started = time.perf_counter()
        status, _, _ = request(
            "POST",
            f"{base}/quiz/attempt/{state['attempt']}/submit",
            {"ts": state["token"], "csrf_token": state["csrf"]},
        )
        timings["submit"].append((time.perf_counter() - started) * 1000)
        errors += status != 303
    queue.put((timings, errors))


def pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def bench(backend: str, trainees: int, processes: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        os.environ["BENCH_CONTENT_DIR"] = str(bench_content(Path(folder)))
        platform = Platform()
        platform.serve()
        with database(backend) as url, tool_server(url) as base:
            platform.register(url, base)
            configure(platform, base)
            sessions = []
            for index in range(trainees):
                landing, page = launch(platform, base, f"examinee-{index:03d}")
                sessions.append((token_in(landing), csrf_in(page)))
            pids = gunicorn_pids()
            cpu_before = cpu_seconds(pids)
            queue: mp.Queue = mp.get_context("fork").Queue()
            chunks = [sessions[i::processes] for i in range(processes)]
            workers = [
                mp.get_context("fork").Process(target=drive, args=(base, chunk, queue))
                for chunk in chunks
            ]
            started = time.monotonic()
            for worker in workers:
                worker.start()
            results = [queue.get(timeout=600) for _ in workers]
            elapsed = time.monotonic() - started
            tool_cpu = cpu_seconds(pids) - cpu_before
            for worker in workers:
                worker.join(timeout=30)
            check = request("GET", f"{base}/health")[0]
        platform.stop()
    saves = [v for timings, _ in results for v in timings["save"]]
    submits = [v for timings, _ in results for v in timings["submit"]]
    errors = sum(e for _, e in results)
    print(
        f"{backend:10} {trainees} attempts of {5 * QUESTIONS_PER_AREA} questions in "
        f"{elapsed:.1f} s ({trainees / elapsed:.1f} attempts/s), errors {errors}, health {check}"
    )
    print(
        f"{backend:10} saves: {len(saves)} = {len(saves) / elapsed:.0f}/s, "
        f"p50 {statistics.median(saves):.1f} ms, p99 {pct(saves, 0.99):.1f} ms"
    )
    print(
        f"{backend:10} submits: p50 {statistics.median(submits):.1f} ms, "
        f"p99 {pct(submits, 0.99):.1f} ms"
    )
    print(
        f"{backend:10} tool CPU {tool_cpu:.1f} s over {elapsed:.1f} s "
        f"({100 * tool_cpu / elapsed / 2:.0f}% of 2 cores; the rest: the load driver, PostgreSQL)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trainees", type=int, default=300)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="postgresql")
    args = parser.parse_args()
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        bench(backend, args.trainees, args.processes)


if __name__ == "__main__":
    main()
