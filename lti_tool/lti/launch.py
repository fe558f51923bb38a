"""Launch validation: the id_token POSTed to /lti/launch, checked step by step.

pylti1p3's `MessageLaunch` orders the steps and runs its message validators as a second
opinion; each step is ours where pylti1p3 is too lenient (it skips `azp`, never deletes a used
nonce, keeps state in a per-process cache, and answers bad input with exceptions that become
500s). Every refusal is a `LtiRefused` with a message for the LMS admin. Validation reads no
database: the state is signed (lti/state.py) and the registrations come from the worker's
snapshot. Nothing is written until the whole launch is valid, and then the state is spent in
the same transaction as the launch's own records.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from flask_babel import lazy_gettext as _l
from pylti1p3.exception import LtiException
from pylti1p3.message_launch import MessageLaunch
from pylti1p3.request import Request as LtiRequest

from lti_tool.db import Direct, utcnow
from lti_tool.lti import claims as C
from lti_tool.lti.errors import LtiRefused, inactive_registration
from lti_tool.lti.login import state_cookie_name
from lti_tool.lti.platform_cache import KnownPlatform, PlatformCache
from lti_tool.lti.platform_keys import PlatformKeyCache, UnknownKey
from lti_tool.lti.roles import Role, map_roles
from lti_tool.lti.state import (
    MAX_STATE_LENGTH,
    LoginState,
    StateSigner,
    prune_used_states,
    spend,
)
from lti_tool.lti.toolconf import DbToolConf

log = logging.getLogger(__name__)

MAX_ID_TOKEN_LENGTH = 64 * 1024
SUPPORTED_MESSAGE_TYPES = frozenset({C.RESOURCE_LINK_REQUEST, C.DEEP_LINKING_REQUEST})


@dataclass(frozen=True)
class ContextClaim:
    id: str
    title: str
    label: str
    types: tuple[str, ...]


@dataclass(frozen=True)
class AgsClaim:
    scopes: tuple[str, ...]
    lineitems: str | None
    lineitem: str | None


@dataclass(frozen=True)
class DeepLinkingSettings:
    return_url: str
    accept_types: tuple[str, ...]
    accept_multiple: bool
    data: str | None
    title: str | None


@dataclass(frozen=True)
class Launch:
    """A validated launch: what the rest of the tool may know of it. No raw claims."""

    platform_id: int
    deployment_pk: int
    # The login state this launch spends (see `consume_login_state`).
    login_state: LoginState
    issuer: str
    client_id: str
    deployment_id: str
    message_type: str
    sub: str
    name: str | None
    given_name: str | None
    family_name: str | None
    email: str | None
    roles: frozenset[Role]
    context: ContextClaim | None
    resource_link_id: str | None
    resource_link_title: str
    target_link_uri: str | None
    locale: str | None
    custom: tuple[tuple[str, str], ...]
    ags: AgsClaim | None
    memberships_url: str | None
    deep_linking: DeepLinkingSettings | None
    # Whether the state cookie set at login came back: the browser keeps our cookies here.
    cookies_work: bool

    @property
    def is_deep_linking(self) -> bool:
        return self.message_type == C.DEEP_LINKING_REQUEST

    def custom_value(self, key: str) -> str | None:
        return dict(self.custom).get(key)


class _FormRequest(LtiRequest):
    def __init__(self, params: Mapping[str, str]) -> None:
        self._params = params

    @property
    def session(self) -> None:
        return None

    def is_secure(self) -> bool:
        return True

    def get_param(self, key: str) -> str:
        return self._params.get(key, "")


class _Unused:
    """pylti1p3 requires session and cookie services; state and nonce live in our DB instead."""


class _ToolMessageLaunch(MessageLaunch):  # type: ignore[type-arg]
    def __init__(
        self,
        params: Mapping[str, str],
        cookies: Mapping[str, str],
        platforms: PlatformCache,
        signer: StateSigner,
        tool_conf: DbToolConf,
        key_cache: PlatformKeyCache,
        *,
        iat_window: dt.timedelta,
        leeway: int,
    ) -> None:
        super().__init__(
            _FormRequest(params),
            tool_conf,
            session_service=_Unused(),
            cookie_service=_Unused(),
            requests_session=_Unused(),  # type: ignore[arg-type]
        )
        self._params = params
        self._cookies = cookies
        self._platforms = platforms
        self._snapshot = platforms.snapshot()
        self._signer = signer
        self._key_cache = key_cache
        self._iat_window = iat_window
        self._leeway = leeway
        self.login_state: LoginState | None = None
        self.platform: KnownPlatform | None = None
        self.deployment_pk: int | None = None
        self.cookies_work = False

    def _get_request_param(self, key: str) -> str:
        value = self._params.get(key, "")
        return value if isinstance(value, str) else ""

    # --- state -------------------------------------------------------------------------------

    def validate_state(self) -> _ToolMessageLaunch:
        state = self._get_request_param("state")
        if not state or len(state) > MAX_STATE_LENGTH:
            raise LtiRefused("missing state", _l("The launch has no login state."))
        login_state = self._signer.decode(state)
        if login_state is None or login_state.expired():
            raise LtiRefused(
                "state unknown or expired" if login_state is None else "state expired",
                _l("This launch has expired or was already used."),
                status=401,
                hint=_l("Go back to the course page and open the activity again."),
            )
        self.login_state = login_state
        # The cookie is a bonus, not a requirement: where the browser refused it the single-use
        # server-side state and the platform-signed nonce still bind this launch to its login.
        self.cookies_work = self._cookies.get(state_cookie_name(state)) == state
        return self

    # --- token format --------------------------------------------------------------------------

    def validate_jwt_format(self) -> _ToolMessageLaunch:
        id_token = self._get_request_param("id_token")
        if not id_token:
            raise LtiRefused("missing id_token", _l("The launch carries no id_token."))
        if len(id_token) > MAX_ID_TOKEN_LENGTH:
            raise LtiRefused("id_token too long", _l("The id_token is too large."))
        try:
            super().validate_jwt_format()
        except LtiException:
            raise LtiRefused(
                "id_token not a JWT", _l("The id_token is not a well-formed JWT.")
            ) from None
        header, body = self._jwt.get("header"), self._jwt.get("body")
        if not isinstance(header, dict) or not isinstance(body, dict):
            raise LtiRefused("id_token not a JWT", _l("The id_token is not a well-formed JWT."))
        if header.get("alg") != "RS256":
            raise LtiRefused(
                f"alg {str(header.get('alg'))[:20]!r} refused",
                _l("The id_token must be signed with RS256."),
                status=401,
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise LtiRefused(
                "kid missing", _l("The id_token header names no key (kid)."), status=401
            )
        return self

    # --- nonce ---------------------------------------------------------------------------------

    def validate_nonce(self) -> _ToolMessageLaunch:
        assert self.login_state is not None
        nonce = self._jwt["body"].get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise LtiRefused("nonce missing", _l("The id_token has no nonce."), status=401)
        if nonce != self.login_state.nonce:
            raise LtiRefused(
                "nonce mismatch",
                _l("The id_token's nonce does not belong to this login."),
                status=401,
            )
        return self

    # --- registration --------------------------------------------------------------------------

    def get_client_id(self) -> str:
        # The login chose the registration; the token must be addressed to it (checked below).
        assert self.login_state is not None
        platform = self._snapshot.by_id.get(self.login_state.platform_id)
        if platform is None:
            self._snapshot = self._platforms.after_miss()
            platform = self._snapshot.by_id.get(self.login_state.platform_id)
        if platform is None:
            return ""
        self._tool_config.remember(platform)
        return platform.client_id

    def validate_registration(self) -> _ToolMessageLaunch:
        body = self._jwt["body"]
        iss = body.get("iss")
        if not isinstance(iss, str) or not iss:
            raise LtiRefused("iss missing", _l("The id_token has no issuer (iss)."), status=401)
        try:
            super().validate_registration()
        except LtiException:
            raise LtiRefused(
                "iss unknown",
                _l("The id_token comes from an issuer this tool is not registered with."),
                status=401,
            ) from None
        assert self.login_state is not None
        platform = self._snapshot.by_id.get(self.login_state.platform_id)
        if platform is None or platform.issuer != iss:
            raise LtiRefused(
                "iss does not match login",
                _l("The id_token's issuer is not the platform that started this login."),
                status=401,
            )
        if not platform.is_active:
            raise inactive_registration(platform.status)
        self._check_audience(body, platform.client_id)
        self.platform = platform
        return self

    @staticmethod
    def _check_audience(body: Mapping[str, Any], client_id: str) -> None:
        aud = body.get("aud")
        if isinstance(aud, str):
            audiences = [aud]
        elif isinstance(aud, list) and all(isinstance(item, str) for item in aud):
            audiences = aud
        else:
            raise LtiRefused("aud malformed", _l("The id_token's audience is missing."), status=401)
        if client_id not in audiences:
            raise LtiRefused(
                "aud lacks client_id",
                _l("The id_token is not addressed to this tool's client ID."),
                status=401,
            )
        azp = body.get("azp")
        if len(audiences) > 1 and azp != client_id:
            raise LtiRefused(
                "azp missing or wrong",
                _l(
                    "The id_token has several audiences but its authorized party (azp) is not "
                    "this tool."
                ),
                status=401,
            )
        if azp is not None and azp != client_id:
            raise LtiRefused(
                "azp wrong",
                _l("The id_token's authorized party (azp) is not this tool."),
                status=401,
            )

    # --- signature and times -------------------------------------------------------------------

    def validate_jwt_signature(self) -> _ToolMessageLaunch:
        assert self.platform is not None
        kid = self._jwt["header"]["kid"]
        try:
            key = self._key_cache.key_for(self.platform.jwks_url, kid)
        except UnknownKey:
            raise LtiRefused(
                "unknown kid",
                _l("The id_token is signed with a key the platform does not publish."),
                status=401,
            ) from None
        try:
            jwt.decode(
                self._get_request_param("id_token"),
                key,
                algorithms=["RS256"],
                audience=self.platform.client_id,
                issuer=self.platform.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise LtiRefused("expired", _l("The id_token has expired."), status=401) from None
        except jwt.ImmatureSignatureError:
            raise LtiRefused(
                "iat in future", _l("The id_token is dated in the future."), status=401
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise LtiRefused(
                f"claim missing: {exc.claim}",
                _l("The id_token lacks a required claim: %(claim)s.", claim=exc.claim),
                status=401,
            ) from None
        except jwt.InvalidTokenError as exc:
            raise LtiRefused(
                f"signature or claims invalid: {type(exc).__name__}",
                _l("The id_token's signature or claims are not valid."),
                status=401,
            ) from None
        self._check_issued_at(self._jwt["body"].get("iat"))
        return self

    def _check_issued_at(self, iat: object) -> None:
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise LtiRefused("iat malformed", _l("The id_token's issue time is not valid."))
        issued = dt.datetime.fromtimestamp(iat, dt.UTC)
        now = utcnow()
        if issued > now + dt.timedelta(seconds=self._leeway):
            raise LtiRefused(
                "iat in future", _l("The id_token is dated in the future."), status=401
            )
        if issued < now - self._iat_window:
            raise LtiRefused("iat too old", _l("The id_token was issued too long ago."), status=401)

    # --- deployment and message ----------------------------------------------------------------

    def validate_deployment(self) -> _ToolMessageLaunch:
        assert self.platform is not None
        deployment_id = self._jwt["body"].get(C.DEPLOYMENT_ID)
        if not isinstance(deployment_id, str) or not deployment_id:
            raise LtiRefused("deployment_id missing", _l("The launch names no deployment."))
        self.deployment_pk = self.platform.deployments.get(deployment_id)
        if self.deployment_pk is None:
            self._snapshot = self._platforms.after_miss()
            platform = self._snapshot.by_id.get(self.platform.id)
            self.deployment_pk = platform.deployments.get(deployment_id) if platform else None
        if self.deployment_pk is None:
            raise LtiRefused(
                "deployment unknown",
                _l(
                    "The deployment “%(deployment)s” is not registered for this platform.",
                    deployment=deployment_id[:100],
                ),
                status=403,
                hint=_l("An administrator can add it with: lti-tool platforms add-deployment"),
            )
        return self

    def validate_message(self) -> _ToolMessageLaunch:
        body = self._jwt["body"]
        if body.get(C.VERSION) != "1.3.0":
            raise LtiRefused("version", _l("The launch is not LTI version 1.3.0."))
        message_type = body.get(C.MESSAGE_TYPE)
        if message_type not in SUPPORTED_MESSAGE_TYPES:
            raise LtiRefused(
                f"message_type {str(message_type)[:40]!r}",
                _l(
                    "This tool does not support the message type “%(type)s”.",
                    type=str(message_type)[:60],
                ),
            )
        sub = body.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255:
            raise LtiRefused("sub", _l("The launch does not identify the user (sub)."))
        roles = body.get(C.ROLES)
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise LtiRefused("roles", _l("The launch has no roles claim."))
        _check_placement_claims(body, message_type)
        try:
            super().validate_message()
        except LtiException as exc:
            raise LtiRefused(f"message: {exc}", _l("The launch message is not valid.")) from None
        return self

    def save_launch_data(self) -> _ToolMessageLaunch:
        # Validation only reads; the caller consumes the login state (consume_login_state) in
        # the transaction that records the launch.
        return self

    def to_launch(self) -> Launch:
        assert self.platform is not None and self.deployment_pk is not None
        assert self.login_state is not None
        return build_launch(
            self._jwt["body"],
            self.platform,
            self.deployment_pk,
            self.login_state,
            self.cookies_work,
        )


def _check_placement_claims(body: Mapping[str, Any], message_type: str) -> None:
    """What the message type needs: a resource link id, or the deep-linking return URL; and a
    context claim, when sent, has an id."""
    if message_type == C.RESOURCE_LINK_REQUEST:
        link = body.get(C.RESOURCE_LINK)
        if not isinstance(link, dict) or not _nonempty_str(link.get("id"), 255):
            raise LtiRefused("resource_link.id", _l("The launch has no resource link id."))
    if message_type == C.DEEP_LINKING_REQUEST:
        settings = body.get(C.DL_SETTINGS)
        if not isinstance(settings, dict) or not _nonempty_str(
            settings.get("deep_link_return_url"), 2048
        ):
            raise LtiRefused(
                "deep_linking_settings", _l("The deep-linking request has no return URL.")
            )
    context = body.get(C.CONTEXT)
    if context is not None and (
        not isinstance(context, dict) or not _nonempty_str(context.get("id"), 255)
    ):
        raise LtiRefused("context.id", _l("The launch's context claim has no id."))


def _nonempty_str(value: object, max_length: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_length


def _opt_str(value: object, max_length: int = 500) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:max_length]
    return None


def _str_tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def _http_url(value: object) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) <= 2048:
        return value
    return None


def build_launch(
    body: Mapping[str, Any],
    platform: KnownPlatform,
    deployment_pk: int,
    login_state: LoginState,
    cookies_work: bool,
) -> Launch:
    context_claim = body.get(C.CONTEXT)
    context = None
    if isinstance(context_claim, dict):
        context = ContextClaim(
            id=str(context_claim["id"]),
            title=_opt_str(context_claim.get("title")) or "",
            label=_opt_str(context_claim.get("label"), 255) or "",
            types=_str_tuple(context_claim.get("type")),
        )
    link = body.get(C.RESOURCE_LINK)
    link = link if isinstance(link, dict) else {}
    ags_claim = body.get(C.AGS_ENDPOINT)
    ags = None
    if isinstance(ags_claim, dict):
        ags = AgsClaim(
            scopes=_str_tuple(ags_claim.get("scope")),
            lineitems=_http_url(ags_claim.get("lineitems")),
            lineitem=_http_url(ags_claim.get("lineitem")),
        )
    nrps = body.get(C.NRPS)
    memberships_url = (
        _http_url(nrps.get("context_memberships_url")) if isinstance(nrps, dict) else None
    )
    presentation = body.get(C.LAUNCH_PRESENTATION)
    locale = _opt_str(presentation.get("locale"), 16) if isinstance(presentation, dict) else None
    custom_claim = body.get(C.CUSTOM)
    custom: tuple[tuple[str, str], ...] = ()
    if isinstance(custom_claim, dict):
        custom = tuple(
            (str(key)[:100], value if isinstance(value, str) else json.dumps(value)[:2000])
            for key, value in list(custom_claim.items())[:100]
        )
    return Launch(
        platform_id=platform.id,
        deployment_pk=deployment_pk,
        login_state=login_state,
        issuer=platform.issuer,
        client_id=platform.client_id,
        deployment_id=str(body[C.DEPLOYMENT_ID]),
        message_type=str(body[C.MESSAGE_TYPE]),
        sub=str(body["sub"]),
        name=_opt_str(body.get("name")),
        given_name=_opt_str(body.get("given_name"), 255),
        family_name=_opt_str(body.get("family_name"), 255),
        email=_opt_str(body.get("email"), 320),
        roles=map_roles(body.get(C.ROLES, [])),
        context=context,
        resource_link_id=_opt_str(link.get("id"), 255),
        resource_link_title=_opt_str(link.get("title")) or "",
        target_link_uri=_http_url(body.get(C.TARGET_LINK_URI)),
        locale=locale,
        custom=custom,
        ags=ags,
        memberships_url=memberships_url,
        deep_linking=_deep_linking(body.get(C.DL_SETTINGS)),
        cookies_work=cookies_work,
    )


def _deep_linking(settings: object) -> DeepLinkingSettings | None:
    if not isinstance(settings, dict):
        return None
    return_url = settings.get("deep_link_return_url")
    if not isinstance(return_url, str):
        return None
    data = settings.get("data")
    return DeepLinkingSettings(
        return_url=return_url,
        accept_types=_str_tuple(settings.get("accept_types")),
        accept_multiple=settings.get("accept_multiple") in (True, "true"),
        data=data if isinstance(data, str) else None,
        title=_opt_str(settings.get("title")),
    )


# One in this many launches also forgets spent states past their expiry.
PRUNE_EVERY = 64


def consume_login_state(conn: Direct, launch: Launch) -> None:
    """Spend the launch's login state, in the transaction that records the launch: single use
    across all workers, since a second use (even a concurrent one) finds it already spent."""
    if not spend(conn, launch.login_state):
        raise LtiRefused(
            "state already used",
            _l("This launch has expired or was already used."),
            status=401,
            hint=_l("Go back to the course page and open the activity again."),
        )
    if secrets.randbelow(PRUNE_EVERY) == 0:
        prune_used_states(conn)


def validate_launch(
    params: Mapping[str, str],
    cookies: Mapping[str, str],
    platforms: PlatformCache,
    signer: StateSigner,
    tool_conf: DbToolConf,
    key_cache: PlatformKeyCache,
    *,
    iat_window: dt.timedelta,
    leeway: int,
) -> Launch:
    """Validate an id_token launch; raise `LtiRefused` on any failure. Reads no database."""
    message = _ToolMessageLaunch(
        params,
        cookies,
        platforms,
        signer,
        tool_conf,
        key_cache,
        iat_window=iat_window,
        leeway=leeway,
    )
    message.validate()
    return message.to_launch()
