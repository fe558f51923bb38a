"""OIDC third-party login initiation: the first step of every launch.

The platform sends iss, login_hint, target_link_uri (and usually client_id, lti_message_hint,
lti_deployment_id); we issue a signed state and its nonce (lti/state.py) and send the browser to
the platform's auth endpoint with our one fixed redirect URI. A login reads the registrations
from the worker's snapshot and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask_babel import lazy_gettext as _l

from lti_tool.lti.errors import LtiRefused, inactive_registration
from lti_tool.lti.platform_cache import KnownPlatform, PlatformCache, Snapshot
from lti_tool.lti.state import StateSigner

log = logging.getLogger(__name__)


def state_cookie_name(state: str) -> str:
    return "tsunagu_state_" + state[:16]


@dataclass(frozen=True)
class LoginStart:
    redirect_url: str
    state: str
    ttl: int


def _param(params: Mapping[str, str], name: str, max_length: int = 2048) -> str | None:
    value = params.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    if len(value) > max_length:
        raise LtiRefused(f"{name} too long", _l("The login request is malformed."))
    return value.strip()


def is_own_url(target: str, tool_base_url: str) -> bool:
    """True when `target` points into this tool (same scheme, host and port, under its path)."""
    try:
        parts, base = urlsplit(target), urlsplit(tool_base_url)
    except ValueError:
        return False
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
        return False
    base_path = base.path.rstrip("/")
    return parts.path == base_path or parts.path.startswith(base_path + "/")


def _knows(snapshot: Snapshot, iss: str, client_id: str | None, deployment: str | None) -> bool:
    found = snapshot.find(iss, client_id)
    return len(found) == 1 and (deployment is None or deployment in found[0].deployments)


def _find_platform(platforms: Snapshot, iss: str, client_id: str | None) -> KnownPlatform:
    found = platforms.find(iss, client_id)
    if not found:
        raise LtiRefused(
            "unknown issuer",
            _l("This tool is not registered with the platform “%(iss)s”.", iss=iss[:200]),
            status=403,
        )
    if len(found) > 1:
        raise LtiRefused(
            "ambiguous issuer",
            _l("The platform has several registrations with this tool but sent no client_id."),
        )
    return found[0]


def start_login(
    platforms: PlatformCache,
    signer: StateSigner,
    params: Mapping[str, str],
    *,
    tool_base_url: str,
    redirect_uri: str,
    state_ttl: int,
) -> LoginStart:
    iss = _param(params, "iss")
    login_hint = _param(params, "login_hint")
    target_link_uri = _param(params, "target_link_uri")
    if not iss or not login_hint or not target_link_uri:
        missing = [
            name
            for name, value in (
                ("iss", iss),
                ("login_hint", login_hint),
                ("target_link_uri", target_link_uri),
            )
            if not value
        ]
        raise LtiRefused(
            "missing " + ",".join(missing),
            _l("The login request lacks: %(names)s.", names=", ".join(missing)),
        )
    if not is_own_url(target_link_uri, tool_base_url):
        raise LtiRefused(
            "foreign target_link_uri",
            _l("The login request's target_link_uri does not point to this tool."),
        )
    client_id = _param(params, "client_id", 255)
    deployment_id = _param(params, "lti_deployment_id", 255)
    snapshot = platforms.snapshot()
    if not _knows(snapshot, iss, client_id, deployment_id):
        snapshot = platforms.after_miss()
    platform = _find_platform(snapshot, iss, client_id)
    if not platform.is_active:
        raise inactive_registration(platform.status)
    if deployment_id is not None and deployment_id not in platform.deployments:
        raise LtiRefused(
            "deployment unknown",
            _l(
                "The deployment “%(deployment)s” is not registered for this platform.",
                deployment=deployment_id[:100],
            ),
            status=403,
        )

    login_state = signer.issue(platform.id, state_ttl)
    state = signer.encode(login_state)
    query = {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": platform.client_id,
        "redirect_uri": redirect_uri,
        "login_hint": login_hint,
        "state": state,
        "nonce": login_state.nonce,
    }
    message_hint = _param(params, "lti_message_hint", 4096)
    if message_hint is not None:
        query["lti_message_hint"] = message_hint
    return LoginStart(
        redirect_url=_with_query(platform.auth_login_url, query), state=state, ttl=state_ttl
    )


def _with_query(base_url: str, extra: Mapping[str, str]) -> str:
    parts = urlsplit(base_url)
    query = parts.query + ("&" if parts.query else "") + urlencode(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
