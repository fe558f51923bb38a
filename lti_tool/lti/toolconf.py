"""pylti1p3's `ToolConfAbstract` backed by our registration tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pylti1p3.actions import Action
from pylti1p3.deployment import Deployment as LtiDeployment
from pylti1p3.registration import Registration as LtiRegistration
from pylti1p3.tool_config.abstract import ToolConfAbstract
from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.lti.keys import signing_key
from lti_tool.lti.models import Deployment, Platform
from lti_tool.lti.platform_cache import KnownPlatform

AnyPlatform = Platform | KnownPlatform


class DbToolConf(ToolConfAbstract):  # type: ignore[type-arg]
    """Registrations live in the DB; an issuer may have many client_ids."""

    def __init__(self, session: Session | Callable[[], Session], secret_key: str) -> None:
        """`session` may be a function giving one, called only if a lookup needs it (a
        launch validated from the worker's registrations never does)."""
        super().__init__()
        self._session_of = session
        self._secret_key = secret_key
        self._known: dict[tuple[str, str], AnyPlatform] = {}

    @property
    def _session(self) -> Session:
        if isinstance(self._session_of, Session):
            return self._session_of
        self._session_of = self._session_of()
        return self._session_of

    def remember(self, platform: AnyPlatform) -> None:
        """A registration already loaded in this unit of work (saves a query)."""
        self._known[(platform.issuer, platform.client_id)] = platform

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_platform(self, iss: str, client_id: str) -> AnyPlatform | None:
        known = self._known.get((iss, client_id))
        if known is not None:
            return known
        return self._session.scalars(
            select(Platform).where(Platform.issuer == iss, Platform.client_id == client_id)
        ).first()

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> LtiRegistration:
        raise NotImplementedError("every issuer may have several client_ids; use params")

    def find_registration_by_params(  # type: ignore[override]
        self, iss: str, client_id: str, *args: Any, **kwargs: Any
    ) -> LtiRegistration | None:
        platform = self.find_platform(iss, client_id)
        if platform is None:
            return None
        # Launch validation needs no tool key; only outgoing service calls do.
        with_keys = kwargs.get("action") != Action.MESSAGE_LAUNCH
        return self.registration_for(platform, with_keys=with_keys)

    def find_deployment(self, iss: str, deployment_id: str) -> LtiDeployment | None:
        raise NotImplementedError("every issuer may have several client_ids; use params")

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str, *args: Any, **kwargs: Any
    ) -> LtiDeployment | None:
        found = self._session.scalars(
            select(Deployment)
            .join(Platform)
            .where(
                Platform.issuer == iss,
                Platform.client_id == client_id,
                Deployment.deployment_id == deployment_id,
            )
        ).first()
        if found is None:
            return None
        return LtiDeployment().set_deployment_id(found.deployment_id)

    def registration_for(self, platform: AnyPlatform, *, with_keys: bool = True) -> LtiRegistration:
        registration = (
            LtiRegistration()
            .set_issuer(platform.issuer)
            .set_client_id(platform.client_id)
            .set_key_set_url(platform.jwks_url)
            .set_auth_login_url(platform.auth_login_url)
        )
        if with_keys:
            key = signing_key(self._session, self._secret_key)
            registration.set_tool_private_key(key.private_pem).set_tool_public_key(key.public_pem)
        if platform.auth_token_url:
            registration.set_auth_token_url(platform.auth_token_url)
        if platform.auth_audience:
            registration.set_auth_audience(platform.auth_audience)
        return registration
