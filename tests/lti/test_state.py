"""Signed login states: what the tool issued decodes, nothing else does, and each is spent once."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from lti_tool.db import Direct
from lti_tool.lti.models import Platform, UsedLoginState
from lti_tool.lti.state import LoginState, StateSigner, prune_used_states, spend
from tests.platform.lms import ToolRegistration


def test_an_issued_state_decodes_to_what_was_issued() -> None:
    signer = StateSigner("secret-a")
    issued = signer.issue(7, 600)
    decoded = signer.decode(signer.encode(issued))
    assert decoded == issued
    assert not decoded.expired()
    assert 599 <= decoded.expires_at - time.time() <= 600
    # The nonce comes from the state's key and the secret, not from anything the state says.
    assert StateSigner("secret-b").issue(7, 600).nonce != issued.nonce


def test_anything_else_does_not_decode() -> None:
    signer = StateSigner("secret-a")
    good = signer.encode(signer.issue(7, 600))
    key, platform, expires, mac = good.split(".")
    for forged in (
        "",
        "nope",
        good + "x",
        f"{key}.8.{expires}.{mac}",
        f"{key}.{platform}.{int(expires) + 1}.{mac}",
        f"{key[:-1]}B.{platform}.{expires}.{mac}",
        f"{key}.{platform}.{expires}",
        f"{key}.-1.{expires}.{mac}",
        "a" * 500,
    ):
        assert signer.decode(forged) is None, forged
    assert StateSigner("secret-b").decode(good) is None


def test_expiry_is_the_states_own() -> None:
    signer = StateSigner("secret-a")
    issued = signer.issue(7, 600)
    old = LoginState(issued.key, 7, int(time.time()) - 1, issued.nonce)
    decoded = signer.decode(signer.encode(old))
    assert decoded is not None and decoded.expired()


def test_a_state_is_spent_once_and_forgotten_after_expiry(db: Any, reg: ToolRegistration) -> None:
    signer = StateSigner("secret-a")
    with db.session_scope() as session:
        platform_id = session.scalars(select(Platform.id)).one()
    live, expired = signer.issue(platform_id, 600), signer.issue(platform_id, -5)
    with db.session_scope() as session:
        conn = Direct.within(session)
        assert spend(conn, live) is True
        assert spend(conn, live) is False
        assert spend(conn, expired) is True
    with db.direct() as conn, conn.atomic():
        assert spend(conn, live) is False
        assert prune_used_states(conn) == 1
    with db.session_scope() as session:
        assert list(session.scalars(select(UsedLoginState.key))) == [live.key]


def test_a_spend_rolled_back_with_its_launch_leaves_the_state_unspent(
    db: Any, reg: ToolRegistration
) -> None:
    signer = StateSigner("secret-a")
    with db.session_scope() as session:
        platform_id = session.scalars(select(Platform.id)).one()
    state = signer.issue(platform_id, 600)
    with pytest.raises(RuntimeError), db.direct() as conn, conn.atomic():
        assert spend(conn, state) is True
        raise RuntimeError("the launch failed after spending its state")
    with db.direct() as conn, conn.atomic():
        assert spend(conn, state) is True
        assert spend(conn, state) is False
