"""Fixtures: a platform built on lti1p3platform, served over loopback HTTP, registered with the
tool for each test (as `lti-tool platforms add` would) and forgotten after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from lti_tool.db import Database
from lti_tool.lti import services
from lti_tool.lti.models import RegisteredVia
from lti_tool.lti.registration import save_platform
from tests.independent.lti1p3_platform import LtiPlatform
from tests.platform.server import LiveServer


@pytest.fixture(scope="session")
def lp_server() -> Iterator[LiveServer]:
    # Another site than the tool (localhost vs 127.0.0.1), as a real platform is.
    server = LiveServer("127.0.0.1", url_host="localhost").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lp_platform(lp_server: LiveServer) -> LtiPlatform:
    platform = LtiPlatform(lp_server.url)
    lp_server.mount(platform.app)
    return platform


def _forget_tokens() -> None:
    # The tool caches service tokens per platform id in its process, and SQLite reuses ids once
    # a test's rows are deleted: each test starts with no token the tool could reuse.
    with services._memory_lock:
        services._memory.clear()


@pytest.fixture
def lp(app: Flask, db: Database, lp_platform: LtiPlatform) -> Iterator[LtiPlatform]:
    """The lti1p3platform platform, with the tool registered on both sides."""
    _forget_tokens()
    lp_platform.reset()
    registration = lp_platform.register_tool(app.extensions["tsunagu.config"].tool_base_url)
    with db.session_scope() as session:
        save_platform(
            session,
            issuer=registration.get_iss(),
            client_id=registration.get_client_id(),
            name="lti1p3platform",
            auth_login_url=lp_platform.base_url + "/auth",
            auth_token_url=lp_platform.base_url + "/token",
            auth_audience=None,
            jwks_url=lp_platform.base_url + "/jwks",
            product_family_code="lti1p3platform",
            deployment_ids=[registration.get_deployment_id()],
            registered_via=RegisteredVia.MANUAL,
        )
    yield lp_platform
    # Work the tool does after its responses (a roster sync) must not reach the next test.
    assert app.extensions["tsunagu.after_response"].wait_idle(30)
    lp_platform.reset()
    _forget_tokens()
