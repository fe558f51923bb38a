"""Typed access to what `create_app` wires into the app (config, database, caches)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app

if TYPE_CHECKING:
    from lti_tool.catalog.model import Catalog
    from lti_tool.config import Config
    from lti_tool.lti.platform_cache import PlatformCache
    from lti_tool.lti.platform_keys import PlatformKeyCache
    from lti_tool.lti.state import StateSigner
    from lti_tool.web.security import FrameAncestors
    from lti_tool.web.session import SessionCodec


def config() -> Config:
    return cast("Config", current_app.extensions["tsunagu.config"])


def session_codec() -> SessionCodec:
    return cast("SessionCodec", current_app.extensions["tsunagu.codec"])


def platform_keys() -> PlatformKeyCache:
    return cast("PlatformKeyCache", current_app.extensions["tsunagu.platform_keys"])


def catalog() -> Catalog:
    return cast("Catalog", current_app.extensions["tsunagu.catalog"])


def frame_ancestors() -> FrameAncestors:
    return cast("FrameAncestors", current_app.extensions["tsunagu.frame_ancestors"])


def platforms() -> PlatformCache:
    return cast("PlatformCache", current_app.extensions["tsunagu.platforms"])


def state_signer() -> StateSigner:
    return cast("StateSigner", current_app.extensions["tsunagu.state_signer"])
