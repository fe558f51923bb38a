"""Fixtures for the LTI Advantage tests: a clean service state in the test LMS and the tool."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from lti_tool.config import Config
from lti_tool.db import Database
from lti_tool.lti import services
from tests.platform.lms import TestLMS


def _reset(lms: TestLMS) -> None:
    # The tool's process-wide token cache is keyed by platform id, which SQLite reuses once a
    # test's rows are deleted: each test starts with no token anywhere.
    with services._memory_lock:
        services._memory.clear()
    lms.token_requests.clear()
    lms.issued_tokens.clear()
    lms.lineitem_requests.clear()
    lms.nrps_requests.clear()
    lms.deep_link_responses.clear()
    lms.scores.clear()
    lms.score_failures.clear()
    lms.members.clear()
    lms.members_page_size = 0
    lms.nrps_hold = None
    lms.enforce_score_order = True


@pytest.fixture(autouse=True)
def _service_state(lms: TestLMS, db: Database) -> Iterator[None]:
    _reset(lms)
    yield
    hold = lms.nrps_hold
    if hold is not None:
        hold.set()
    _reset(lms)


@pytest.fixture
def config(app: Flask) -> Config:
    found: Config = app.extensions["tsunagu.config"]
    return found
