"""The workers' snapshot of the registrations: reused for its TTL, reloaded after a miss (at
most once a second), dropped by a registration made in the tool."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update

from lti_tool.lti import platform_cache
from lti_tool.lti.models import Platform, PlatformStatus
from lti_tool.lti.platform_cache import PlatformCache, Snapshot
from tests.conftest import make_user
from tests.lti.launch_helpers import ENGLISH
from tests.platform.driver import Browser
from tests.platform.lms import TestLMS


class Loads:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> Snapshot:
        self.count += 1
        return Snapshot(by_id={})


def test_a_snapshot_is_reused_for_its_ttl_and_dropped_by_invalidate() -> None:
    loads = Loads()
    cache = PlatformCache(loads, ttl=60)
    first = cache.snapshot()
    assert cache.snapshot() is first and loads.count == 1
    cache.invalidate()
    assert cache.snapshot() is not first and loads.count == 2


def test_ttl_zero_reads_every_time() -> None:
    loads = Loads()
    cache = PlatformCache(loads, ttl=0)
    cache.snapshot()
    cache.snapshot()
    assert loads.count == 2


def test_a_miss_reloads_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = Loads()
    clock = [1000.0]
    monkeypatch.setattr(platform_cache.time, "monotonic", lambda: clock[0])
    cache = PlatformCache(loads, ttl=60)
    cache.snapshot()
    cache.after_miss()  # however fresh the snapshot: what missed may be new
    assert loads.count == 2
    clock[0] += 0.5
    cache.after_miss()
    assert loads.count == 2
    clock[0] += 1
    cache.after_miss()
    assert loads.count == 3


@pytest.fixture
def cached(app: Flask) -> Any:
    """The tool with a long-lived snapshot, as in production."""
    platforms = app.extensions["tsunagu.platforms"]
    platforms.ttl = 3600
    platforms.invalidate()
    yield platforms
    platforms.ttl = 0
    platforms.invalidate()


def _login_status(browser: Browser, lms: TestLMS, reg: Any) -> int:
    response = browser.http.post(
        reg.login_url,
        data=lms.login_params(reg, make_user("Learner")),
        headers=ENGLISH,
        allow_redirects=False,
        timeout=10,
    )
    return response.status_code


def test_a_platform_added_behind_the_snapshot_logs_in_at_once(
    cached: Any, browser: Browser, lms: TestLMS, register: Callable[..., Any]
) -> None:
    assert browser.http.get(browser.tool_url + "/health", timeout=10).status_code == 200
    cached.snapshot()  # loaded before the platform exists
    reg = register()
    assert _login_status(browser, lms, reg) == 302


def test_a_disabled_platform_stops_when_the_snapshot_is_renewed(
    cached: Any, browser: Browser, lms: TestLMS, register: Callable[..., Any], db: Any
) -> None:
    reg = register()
    assert _login_status(browser, lms, reg) == 302
    with db.session_scope() as session:
        session.execute(update(Platform).values(status=PlatformStatus.DISABLED))
    # Within the TTL the worker still trusts what it read (documented: up to
    # registration_cache_ttl seconds); a renewed snapshot refuses.
    assert _login_status(browser, lms, reg) == 302
    cached.invalidate()
    assert _login_status(browser, lms, reg) == 403
