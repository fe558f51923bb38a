"""Grade delivery throughput: 10,000 queued scores (distinct trainees and grade items) delivered
by the tool's outbox workers to the test LMS (tests/platform/lms.py) over loopback HTTP.

The test LMS runs in a process of its own (so its CPU does not share the tool's GIL), checks the
tool's client assertion against the tool's JWKS, and answers scores as Moodle does (409 for a
timestamp not later than the last one). Prints scores/s, wall time, token requests, line-item
requests, and the SQL statements per score (a `before_cursor_execute` listener on the workers'
engine; COMMIT/ROLLBACK are not statements and are not counted).

    .venv/bin/python bench/grades.py [--backend sqlite|postgresql|both] [--scores 10000]
                                     [--workers 4] [--limit 100] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from common import ROOT, SECRET, database, free_port
from sqlalchemy import event, func, insert, select

sys.path.insert(0, str(ROOT))

ITEMS = 10  # graded activities (resource links) in the course; scores spread over them


# --- the test LMS, in its own process --------------------------------------------------------


def lms_app() -> Any:
    """The test LMS as a WSGI app, for gunicorn (`grades:lms_app()`): one process, threads, and
    HTTP keep-alive, which the Werkzeug test server never offers (it closes every connection)."""
    import os

    from flask import jsonify, request

    from tests.platform.lms import TestLMS

    lms = TestLMS("Bench LMS")
    lms.base_url = os.environ["BENCH_LMS_URL"]
    answers: Counter[str] = Counter()

    @lms.app.after_request
    def _count(response: Any) -> Any:
        answers[f"{request.method} {request.path.rsplit('/', 1)[-1]} {response.status_code}"] += 1
        return response

    @lms.app.post("/bench/add-tool")
    def add_tool() -> Any:
        reg = lms.add_tool(request.form["tool_base_url"])
        return jsonify({"client_id": reg.client_id, "deployment_id": reg.deployment_id})

    @lms.app.get("/bench/stats")
    def stats() -> Any:
        per_user = Counter((s.lineitem, s.body.get("userId")) for s in lms.scores)
        return jsonify(
            {
                "scores": len(lms.scores),
                "doubled": sum(1 for n in per_user.values() if n > 1),
                "refused": len(lms.scores.refused),
                "token_requests": len(lms.token_requests),
                "lineitem_requests": len(lms.lineitem_requests),
                "answers": dict(answers),
            }
        )

    return lms.app


@contextmanager
def lms_server(kind: str) -> Iterator[str]:
    """The test LMS on loopback: under gunicorn (keep-alive), or Werkzeug's server as the tests
    serve it (a new connection per request)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BENCH_LMS_URL": url, "PYTHONPATH": str(ROOT)}
    if kind == "gunicorn":
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            "8",
            "--keep-alive",
            "30",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--chdir",
            str(ROOT / "bench"),
            "grades:lms_app()",
        ]
    else:
        command = [
            sys.executable,
            "-c",
            "import sys, logging; sys.path.insert(0, 'bench'); import grades;"
            "from werkzeug.serving import run_simple;"
            "logging.getLogger('werkzeug').setLevel(logging.WARNING);"
            f"run_simple('127.0.0.1', {port}, grades.lms_app(), threaded=True)",
        ]
    process = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/bench/stats", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the test LMS did not start")
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


# --- set-up ----------------------------------------------------------------------------------


def _seed(database_url: str, lms_url: str, client_id: str, scores: int) -> None:
    """The platform, one course, trainees and graded activities, and `scores` queued scores —
    bulk inserts, as many rows per statement as the driver takes."""
    from lti_tool.db import Database, utcnow
    from lti_tool.grading.models import GradeItem, GradeOutbox, OutboxStatus
    from lti_tool.identity.models import Course, Member, Person, ResourceLink
    from lti_tool.lti.keys import ensure_key
    from lti_tool.lti.models import Deployment, Platform, RegisteredVia
    from lti_tool.lti.registration import save_platform

    db = Database(database_url)
    now = utcnow().replace(microsecond=0)
    members_needed = -(-scores // ITEMS)
    with db.session_scope() as session:
        ensure_key(session, SECRET)
        save_platform(
            session,
            issuer=lms_url,
            client_id=client_id,
            name="Bench LMS",
            auth_login_url=lms_url + "/auth",
            auth_token_url=lms_url + "/token",
            auth_audience=None,
            jwks_url=lms_url + "/jwks",
            product_family_code="testlms",
            deployment_ids=["1"],
            registered_via=RegisteredVia.MANUAL,
        )
        platform_id = session.scalars(select(Platform.id)).one()
        deployment_id = session.scalars(select(Deployment.id)).one()
        course = Course(
            deployment_id=deployment_id,
            context_key="course-1",
            context_id="course-1",
            title="Bench course",
            memberships_url=lms_url + "/nrps/course-1",
        )
        session.add(course)
        session.flush()
        session.execute(
            insert(Person),
            [
                {"platform_id": platform_id, "sub": f"trainee-{i:06d}", "name": f"Trainee {i}"}
                for i in range(members_needed)
            ],
        )
        person_ids = list(session.scalars(select(Person.id).order_by(Person.id)))
        session.execute(
            insert(Member),
            [{"course_id": course.id, "person_id": pid, "roles": "learner"} for pid in person_ids],
        )
        member_ids = list(session.scalars(select(Member.id).order_by(Member.id)))
        links = [
            ResourceLink(
                course_id=course.id,
                resource_link_id=f"rl-{n}",
                title=f"Module {n}",
                lineitems_url=lms_url + "/ags/course-1/lineitems?type_id=1",
                lineitem_url=lms_url + f"/ags/course-1/lineitems/rl-{n}/lineitem?type_id=1",
            )
            for n in range(ITEMS)
        ]
        session.add_all(links)
        session.flush()
        items = [
            GradeItem(
                course_id=course.id,
                resource_link_pk=link.id,
                key=f"module:{n}",
                label=f"Module {n}",
                score_maximum=100,
                tag="module-completion",
            )
            for n, link in enumerate(links)
        ]
        session.add_all(items)
        session.flush()
        rows = [
            {
                "course_id": course.id,
                "member_id": member_ids[i // ITEMS],
                "grade_item_id": items[i % ITEMS].id,
                "score_given": float(i % 101),
                "score_maximum": 100.0,
                "activity_progress": "Completed",
                "grading_progress": "FullyGraded",
                "score_timestamp": now,
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
            }
            for i in range(scores)
        ]
        for start in range(0, len(rows), 2000):
            session.execute(insert(GradeOutbox), rows[start : start + 2000])
    db.engine.dispose()


# --- the run ---------------------------------------------------------------------------------


def _deliver_all(
    db: Any, config: Any, workers: int, limit: int, profile: str | None
) -> tuple[Counter[str], float]:
    """`workers` threads each calling `deliver` until nothing is due; (outcomes, wall time)."""
    from lti_tool.grading.delivery import deliver

    outcomes: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        mine: Counter[str] = Counter()
        try:
            while result := deliver(db, config, limit=limit):
                mine += result
        except BaseException as exc:  # reported after the run
            errors.append(exc)
        with lock:
            outcomes.update(mine)

    profiler = cProfile.Profile() if profile else None
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    if workers == 1:
        worker()  # in this thread, where cProfile sees it
    else:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    wall = time.perf_counter() - started
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    if errors:
        raise errors[0]
    return outcomes, wall


def run(
    backend: str,
    scores: int,
    workers: int,
    limit: int,
    profile: str | None,
    lms_kind: str = "gunicorn",
) -> dict[str, Any]:
    from lti_tool.app import create_app
    from lti_tool.config import Config
    from lti_tool.db import Database
    from lti_tool.grading.models import GradeOutbox
    from tests.platform.server import LiveServer

    tool = LiveServer("127.0.0.1").start()  # serves the tool's JWKS to the LMS's token check
    try:
        with (
            lms_server(lms_kind) as lms_url,
            database(backend) as url,
            tempfile.TemporaryDirectory() as instance,
        ):
            config = Config(
                database_url=url,
                tool_base_url=tool.url,
                secret_key=SECRET,
                instance_dir=Path(instance),
                content_dir=ROOT / "tests" / "fixtures" / "content",
            )
            app = create_app(config)
            tool.mount(app)
            logging.getLogger("lti_tool").setLevel(logging.WARNING)  # no line per pass
            added = requests.post(
                lms_url + "/bench/add-tool", data={"tool_base_url": tool.url}, timeout=10
            )
            started = time.perf_counter()
            _seed(url, lms_url, added.json()["client_id"], scores)
            seeded = time.perf_counter() - started

            db = Database(url)
            statements = Counter[str]()
            lock = threading.Lock()

            @event.listens_for(db.engine, "before_cursor_execute")
            def _count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
                with lock:
                    statements[statement.split(None, 1)[0].upper()] += 1

            outcomes, wall = _deliver_all(db, config, workers, limit, profile)
            stats = requests.get(lms_url + "/bench/stats", timeout=10).json()
            with db.session_scope() as session:
                by_status = dict(
                    session.execute(
                        select(GradeOutbox.status, func.count()).group_by(GradeOutbox.status)
                    ).all()
                )
            db.engine.dispose()
            app.extensions["tsunagu.db"].engine.dispose()
            total = sum(statements.values())
            return {
                "backend": backend,
                "lms_server": lms_kind,
                "scores": scores,
                "workers": workers,
                "limit": limit,
                "seed_s": round(seeded, 2),
                "wall_s": round(wall, 2),
                "scores_per_s": round(outcomes["delivered"] / wall, 1),
                "outcomes": dict(outcomes),
                "outbox": {k.value: v for k, v in by_status.items()},
                "lms": stats,
                "statements": total,
                "statements_per_score": round(total / max(scores, 1), 2),
                "statements_by_kind": dict(statements.most_common()),
            }
    finally:
        tool.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--scores", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4, help="delivery threads")
    parser.add_argument("--limit", type=int, default=100, help="scores claimed per pass")
    parser.add_argument("--profile", help="write a cProfile of the delivery phase here")
    parser.add_argument(
        "--lms-server",
        choices=["gunicorn", "werkzeug"],
        default="gunicorn",
        help="what serves the test LMS (werkzeug: no keep-alive)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        profile = f"{args.profile}.{backend}" if args.profile else None
        result = run(backend, args.scores, args.workers, args.limit, profile, args.lms_server)
        if args.json:
            print(json.dumps(result))
            continue
        lms = result["lms"]
        print(
            f"[{backend}, LMS on {result['lms_server']}] {result['scores']} scores, "
            f"{result['workers']} workers, "
            f"{result['limit']} per claim (seeded in {result['seed_s']} s)"
        )
        print(
            f"  delivered {result['outcomes'].get('delivered', 0)} in {result['wall_s']} s: "
            f"{result['scores_per_s']} scores/s"
        )
        print(f"  outcomes {result['outcomes']}; outbox {result['outbox']}")
        print(
            f"  LMS: {lms['scores']} scores received, {lms['doubled']} doubled, "
            f"{lms['refused']} refused, {lms['token_requests']} token requests, "
            f"{lms['lineitem_requests']} line-item requests; answers {lms['answers']}"
        )
        print(
            f"  DB statements: {result['statements']} ({result['statements_per_score']} per "
            f"score) {result['statements_by_kind']}"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    sys.setrecursionlimit(10_000)
    main()
