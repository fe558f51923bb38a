"""LTI Dynamic Registration (the tool side) and manual registration of platforms.

A Moodle admin pastes `<TOOL_BASE_URL>/lti/register` as the Tool URL. The platform opens it with
`openid_configuration` and `registration_token`; we fetch the platform's configuration, check it,
post our configuration to its registration endpoint, and store the client_id and deployment_id
it returns.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.errors import UpstreamError
from lti_tool.lti import claims as C
from lti_tool.lti.errors import LtiRefused
from lti_tool.lti.http import http_session
from lti_tool.lti.models import Deployment, Platform, PlatformStatus, RegisteredVia

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 256 * 1024
PLATFORM_CONFIG = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIG = "https://purl.imsglobal.org/spec/lti-tool-configuration"

TOOL_NAME = {"en": "Tsunagu", "ja": "つなぐ"}
TOOL_DESCRIPTION = {
    "en": "Training for Foreign Resident Support Coordinators: competency modules A–E, "
    "case-scenario discussions, the completion test, and practicum records.",
    "ja": "外国人支援コーディネーター養成研修：A〜Eの科目、事例検討、修了認定テスト、実践の記録。",
}


@dataclass(frozen=True)
class PlatformConfiguration:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str | None
    jwks_uri: str
    registration_endpoint: str
    authorization_server: str | None
    scopes_supported: tuple[str, ...]
    product_family_code: str | None
    version: str | None

    @property
    def display_name(self) -> str:
        return self.product_family_code or urlsplit(self.issuer).netloc


def _refuse(reason: str, message: Any) -> LtiRefused:
    return LtiRefused(
        reason,
        message,
        hint=_l(
            "Start the registration again from the LMS. If it fails again, check the "
            "LMS's address settings and that it can reach this tool."
        ),
    )


def _check_fetchable(url: str, *, allow_private: bool) -> None:
    """Refuse URLs we must not fetch on a stranger's say-so (cloud metadata, non-HTTP)."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a malformed host ("[::1") or port (":99999999", ":port")
        valid = False
    if not valid:
        raise _refuse("config url not http", _l("The platform configuration URL is not valid."))
    assert parts.hostname is not None
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, None)}
    except (OSError, ValueError):  # ValueError: a name IDNA cannot encode ("a..b")
        raise _refuse(
            "config host unresolvable", _l("The platform's host name could not be resolved.")
        ) from None
    for address in addresses:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
            raise _refuse(
                "config host forbidden", _l("The platform configuration URL is not valid.")
            )
        if ip.is_private and not ip.is_loopback and not allow_private:
            raise _refuse("config host private", _l("The platform configuration URL is not valid."))


def _read_json(response: requests.Response, what: str) -> Any:
    body = response.raw.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
    response.close()
    if len(body) > MAX_DOCUMENT_BYTES:
        raise UpstreamError(
            _l("The platform's answer is too large."), log_detail=f"{what} too large"
        )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UpstreamError(
            _l("The platform's answer could not be read."), log_detail=f"{what} is not JSON"
        ) from None


def _same_host(a: str, b: str) -> bool:
    try:
        pa, pb = urlsplit(a), urlsplit(b)
        return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
    except ValueError:  # a malformed port
        return False


def fetch_platform_configuration(
    url: str, *, timeout: float, allow_private: bool = True
) -> PlatformConfiguration:
    _check_fetchable(url, allow_private=allow_private)
    try:
        response = http_session().get(
            url,
            timeout=timeout,
            stream=True,
            allow_redirects=False,
            headers={"Accept": "application/json"},
        )
    except requests.RequestException as exc:
        raise UpstreamError(
            _l("The platform's configuration could not be fetched."),
            log_detail=f"openid-configuration fetch failed: {type(exc).__name__}",
        ) from exc
    if response.status_code != 200:
        response.close()
        raise UpstreamError(
            _l("The platform's configuration could not be fetched."),
            log_detail=f"openid-configuration answered {response.status_code}",
        )
    document = _read_json(response, "openid-configuration")
    platform = parse_platform_configuration(document, url)
    # The endpoints the tool itself calls are the document's word, not the LMS admin's: they
    # pass the same check as its URL, or any site could point us at a metadata service.
    for endpoint in (platform.registration_endpoint, platform.jwks_uri, platform.token_endpoint):
        if endpoint is not None:
            _check_fetchable(endpoint, allow_private=allow_private)
    return platform


def _url_field(document: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = document.get(name)
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) <= 2048:
        return value
    if required:
        raise _refuse(
            f"config lacks {name}",
            _l("The platform's configuration lacks “%(field)s”.", field=name),
        )
    return None


def parse_platform_configuration(document: Any, url: str) -> PlatformConfiguration:
    if not isinstance(document, dict):
        raise _refuse("config not an object", _l("The platform's configuration is not valid."))
    issuer = _url_field(document, "issuer")
    assert issuer is not None
    # The issuer must be on the host we fetched the configuration from, so a page cannot
    # register us with a platform it does not control (LTI Dynamic Registration, 3.5).
    if not _same_host(issuer, url):
        raise _refuse(
            "issuer host mismatch",
            _l(
                "The platform's issuer “%(issuer)s” is not on the host its configuration came "
                "from.",
                issuer=issuer[:200],
            ),
        )
    platform_config = document.get(PLATFORM_CONFIG)
    platform_config = platform_config if isinstance(platform_config, dict) else {}
    scopes = document.get("scopes_supported")
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "id_token" not in response_types:
        raise _refuse("no id_token response", _l("The platform does not support LTI launches."))
    return PlatformConfiguration(
        issuer=issuer,
        authorization_endpoint=str(_url_field(document, "authorization_endpoint")),
        token_endpoint=_url_field(document, "token_endpoint", required=False),
        jwks_uri=str(_url_field(document, "jwks_uri")),
        registration_endpoint=str(_url_field(document, "registration_endpoint")),
        authorization_server=(
            document["authorization_server"]
            if isinstance(document.get("authorization_server"), str)
            else None
        ),
        scopes_supported=tuple(s for s in scopes if isinstance(s, str))
        if isinstance(scopes, list)
        else (),
        product_family_code=(
            str(platform_config["product_family_code"])[:100]
            if isinstance(platform_config.get("product_family_code"), str)
            else None
        ),
        version=str(platform_config.get("version"))[:50]
        if platform_config.get("version")
        else None,
    )


@dataclass(frozen=True)
class ToolUrls:
    base: str

    @property
    def login(self) -> str:
        return self.base + "/lti/login"

    @property
    def launch(self) -> str:
        return self.base + "/lti/launch"

    @property
    def jwks(self) -> str:
        return self.base + "/lti/jwks"

    @property
    def register(self) -> str:
        return self.base + "/lti/register"

    @property
    def logo(self) -> str:
        return self.base + "/static/img/tsunagu-logo.svg"

    @property
    def domain(self) -> str:
        return urlsplit(self.base).netloc


def tool_configuration(urls: ToolUrls, platform: PlatformConfiguration) -> dict[str, Any]:
    """The registration request body (LTI Dynamic Registration, 3.6)."""
    wanted = C.TOOL_SCOPES
    # Ask only for scopes the platform offers, when it says what it offers.
    scopes = (
        [s for s in wanted if s in platform.scopes_supported]
        if platform.scopes_supported
        else list(wanted)
    )
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": urls.login,
        "redirect_uris": [urls.launch],
        "client_name": TOOL_NAME["en"],
        "client_name#en": TOOL_NAME["en"],
        "client_name#ja": TOOL_NAME["ja"],
        "jwks_uri": urls.jwks,
        "logo_uri": urls.logo,
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(scopes),
        TOOL_CONFIG: {
            "domain": urls.domain,
            "description": TOOL_DESCRIPTION["en"],
            "description#en": TOOL_DESCRIPTION["en"],
            "description#ja": TOOL_DESCRIPTION["ja"],
            "target_link_uri": urls.launch,
            "claims": ["iss", "sub", "name", "given_name", "family_name", "email", "locale"],
            "messages": [
                {
                    "type": C.DEEP_LINKING_REQUEST,
                    "target_link_uri": urls.launch,
                    "label": TOOL_NAME["en"],
                    "label#en": TOOL_NAME["en"],
                    "label#ja": TOOL_NAME["ja"],
                    "placements": ["ContentArea"],
                },
                {"type": C.RESOURCE_LINK_REQUEST, "target_link_uri": urls.launch},
            ],
        },
    }


@dataclass(frozen=True)
class RegistrationResult:
    platform: Platform
    deployment: Deployment | None
    created: bool


def register_with_platform(
    session: Session,
    platform_config: PlatformConfiguration,
    registration_token: str | None,
    urls: ToolUrls,
    *,
    timeout: float,
    pending: bool = False,
) -> RegistrationResult:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if registration_token:
        headers["Authorization"] = f"Bearer {registration_token}"
    body = tool_configuration(urls, platform_config)
    try:
        response = http_session().post(
            platform_config.registration_endpoint,
            data=json.dumps(body),
            headers=headers,
            timeout=timeout,
            stream=True,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise UpstreamError(
            _l("The platform's registration endpoint could not be reached."),
            log_detail=f"registration POST failed: {type(exc).__name__}",
        ) from exc
    if response.status_code not in (200, 201):
        text = response.raw.read(2000, decode_content=True).decode("utf-8", "replace")
        response.close()
        raise UpstreamError(
            _l(
                "The platform refused the registration (HTTP %(status)s).",
                status=response.status_code,
            ),
            hint=text[:300] or None,
            log_detail=f"registration answered {response.status_code}",
        )
    answer = _read_json(response, "registration response")
    client_id = answer.get("client_id") if isinstance(answer, dict) else None
    if not isinstance(client_id, str) or not client_id or len(client_id) > 255:
        raise UpstreamError(
            _l("The platform's registration answer has no client ID."),
            log_detail="registration answer lacks client_id",
        )
    tool_answer = answer.get(TOOL_CONFIG)
    deployment_id = tool_answer.get("deployment_id") if isinstance(tool_answer, dict) else None
    return save_platform(
        session,
        issuer=platform_config.issuer,
        client_id=client_id,
        name=platform_config.display_name,
        auth_login_url=platform_config.authorization_endpoint,
        auth_token_url=platform_config.token_endpoint,
        auth_audience=platform_config.authorization_server,
        jwks_url=platform_config.jwks_uri,
        product_family_code=platform_config.product_family_code,
        deployment_ids=[str(deployment_id)[:255]] if deployment_id else [],
        registered_via=RegisteredVia.DYNAMIC,
        pending=pending,
    )


def save_platform(
    session: Session,
    *,
    issuer: str,
    client_id: str,
    name: str,
    auth_login_url: str,
    auth_token_url: str | None,
    auth_audience: str | None,
    jwks_url: str,
    product_family_code: str | None,
    deployment_ids: list[str],
    registered_via: RegisteredVia,
    pending: bool = False,
) -> RegistrationResult:
    """Create or update the registration (issuer, client_id) and add its deployments."""
    platform = session.scalars(
        select(Platform).where(Platform.issuer == issuer, Platform.client_id == client_id)
    ).first()
    created = platform is None
    if platform is None:
        # A new registration starts active, or pending where the tool's administrator approves
        # registrations; an existing one keeps its status (re-registering never re-enables).
        platform = Platform(
            issuer=issuer,
            client_id=client_id,
            registered_via=registered_via,
            status=PlatformStatus.PENDING if pending else PlatformStatus.ACTIVE,
        )
        session.add(platform)
    platform.name = name[:255]
    platform.auth_login_url = auth_login_url
    platform.auth_token_url = auth_token_url
    platform.auth_audience = auth_audience
    platform.jwks_url = jwks_url
    platform.product_family_code = product_family_code
    session.flush()
    deployment = None
    for deployment_id in deployment_ids:
        deployment = add_deployment(session, platform, deployment_id)
    log.info(
        "platform registered id=%s via=%s created=%s deployments=%d",
        platform.id,
        registered_via.value,
        created,
        len(deployment_ids),
    )
    return RegistrationResult(platform=platform, deployment=deployment, created=created)


def add_deployment(session: Session, platform: Platform, deployment_id: str) -> Deployment:
    found = session.scalars(
        select(Deployment).where(
            Deployment.platform_id == platform.id, Deployment.deployment_id == deployment_id
        )
    ).first()
    if found is not None:
        return found
    deployment = Deployment(platform_id=platform.id, deployment_id=deployment_id)
    session.add(deployment)
    session.flush()
    return deployment
