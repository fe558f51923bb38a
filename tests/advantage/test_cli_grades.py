"""`lti-tool grades deliver`: one pass in-process, and the `--loop` worker as a real process
that stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from lti_tool.cli import CliContext, main
from lti_tool.grading.models import OutboxStatus
from tests.advantage.helpers import add_trainees, launched, outbox_rows, queue_score
from tests.conftest import SECRET

LTI_TOOL = Path(sys.executable).parent / "lti-tool"


@pytest.fixture
def env(app: Flask, database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "TOOL_BASE_URL": app.extensions["tsunagu.config"].tool_base_url,
    }


def run(env: dict[str, str], *args: str) -> str:
    context = CliContext()
    try:
        result = CliRunner(env=env).invoke(main, list(args), obj=context)
    finally:
        if context._db is not None:
            context._db.engine.dispose()
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_one_pass_prints_what_it_did(browser, reg, learner, lms, db, env):
    launched(browser, reg, learner)
    trainees = add_trainees(db, 3)
    lms.score_failures.append((400, "refused"))
    for member_id, _ in trainees:
        queue_score(db, member_id, 70)
    before = signal.getsignal(signal.SIGTERM)
    assert run(env, "grades", "deliver").strip() == "grades: delivered 2, failed 1"
    assert signal.getsignal(signal.SIGTERM) == before  # the command leaves the process as it was
    assert run(env, "grades", "deliver").strip() == "grades: nothing due"
    assert len(lms.scores) == 2


def test_one_pass_takes_at_most_the_limit(browser, reg, learner, lms, db, env):
    launched(browser, reg, learner)
    for member_id, _ in add_trainees(db, 5):
        queue_score(db, member_id, 70)
    assert run(env, "grades", "deliver", "--limit", "3").strip() == "grades: delivered 3"
    assert run(env, "grades", "deliver", "--limit", "3").strip() == "grades: delivered 2"


def test_the_worker_loop_delivers_and_stops_on_sigterm(browser, reg, learner, lms, db, env):
    launched(browser, reg, learner)
    trainees = add_trainees(db, 4)
    for member_id, _ in trainees[:2]:
        queue_score(db, member_id, 70)
    # A long interval: SIGTERM must not wait for it to run out.
    process = subprocess.Popen(
        [str(LTI_TOOL), "grades", "deliver", "--loop", "--interval", "120"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def delivered() -> int:
            return Counter(r.status for r in outbox_rows(db))[OutboxStatus.DELIVERED]

        deadline = time.monotonic() + 20
        while delivered() < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert delivered() == 2, process.stderr.read() if process.poll() is not None else ""
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert out.strip() == "grades: delivered 2"
    assert len(lms.scores) == 2
