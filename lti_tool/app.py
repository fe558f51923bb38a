"""The app factory: the one place that wires the tool together. Nothing happens at import time."""

from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from flask_babel import Babel

from lti_tool import __version__
from lti_tool.after_response import AfterResponse
from lti_tool.config import Config
from lti_tool.db import Database
from lti_tool.lti.platform_cache import PlatformCache, load_snapshot
from lti_tool.lti.platform_keys import PlatformKeyCache
from lti_tool.lti.state import StateSigner
from lti_tool.web.context import init_session_handling
from lti_tool.web.errors import init_error_pages
from lti_tool.web.i18n import select_babel_locale
from lti_tool.web.logging import init_logging
from lti_tool.web.security import FrameAncestors, init_security_headers
from lti_tool.web.session import SessionCodec
from lti_tool.web.templating import init_templating

MAX_REQUEST_BYTES = 2 * 1024 * 1024


class NoCookieSession(SessionInterface):
    """Flask's `session` unused: a null session, never read from or written to a cookie."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask(__name__, instance_path=str(config.instance_dir), static_folder="static")
    app.config.update(
        SECRET_KEY=config.secret_key,
        TESTING=config.testing,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        BABEL_DEFAULT_LOCALE="ja",
        BABEL_DEFAULT_TIMEZONE="Asia/Tokyo",
        BABEL_TRANSLATION_DIRECTORIES="translations",
        TEMPLATES_AUTO_RELOAD=False,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    app.extensions["tsunagu.config"] = config
    # The tool keeps no state in Flask's cookie session (sessions are signed tokens, see
    # web/session.py): skip opening one on every request.
    app.session_interface = NoCookieSession()
    init_logging(app, testing=config.testing)

    db = Database(config.database_url)
    db.init_app(app)
    Babel(app, locale_selector=select_babel_locale)

    app.extensions["tsunagu.codec"] = SessionCodec(
        config.secret_key, bound_ttl=config.session_ttl, unbound_ttl=config.url_token_ttl
    )
    app.extensions["tsunagu.platform_keys"] = PlatformKeyCache(
        ttl=config.jwks_cache_ttl,
        refetch_interval=config.jwks_refetch_interval,
        timeout=config.http_timeout,
    )
    demo_origins = _demo_origins(config) if config.demo else ()
    platforms = PlatformCache(lambda: load_snapshot(db), ttl=config.registration_cache_ttl)
    app.extensions["tsunagu.platforms"] = platforms
    app.extensions["tsunagu.state_signer"] = StateSigner(config.secret_key)
    frame_ancestors = FrameAncestors(platforms, extra=demo_origins)
    app.extensions["tsunagu.frame_ancestors"] = frame_ancestors
    init_security_headers(app, frame_ancestors, hsts=config.secure_transport)
    init_session_handling(app)
    init_error_pages(app)
    init_templating(app)

    from lti_tool.catalog.loader import load_catalog
    from lti_tool.discussions.linking import scenario_items
    from lti_tool.discussions.views import bp as discussions_bp
    from lti_tool.grading import delivery
    from lti_tool.grading.views import bp as grading_bp
    from lti_tool.home.views import bp as home_bp
    from lti_tool.identity import roster
    from lti_tool.linking.landing import handle_known_launch, handle_launch
    from lti_tool.linking.registry import LinkRegistry
    from lti_tool.linking.views import bp as linking_bp
    from lti_tool.lti.views import bp as lti_bp
    from lti_tool.modules.linking import module_items
    from lti_tool.modules.views import bp as modules_bp
    from lti_tool.quiz.linking import quiz_items
    from lti_tool.quiz.views import bp as quiz_bp
    from lti_tool.web.views import bp as web_bp

    # Invalid content stops the app here, with every problem and its file and line.
    catalog = load_catalog(config.content_dir)
    app.extensions["tsunagu.catalog"] = catalog
    links = LinkRegistry()
    links.add_provider(lambda: module_items(catalog))
    links.add_provider(lambda: quiz_items(catalog))
    links.add_provider(lambda: scenario_items(catalog))
    app.extensions["tsunagu.links"] = links
    app.extensions["tsunagu.after_response"] = AfterResponse()
    app.extensions["tsunagu.launch_handler"] = handle_launch
    app.extensions["tsunagu.known_launch_handler"] = handle_known_launch
    delivery.init_app(app)
    roster.init_app(app)
    blueprints = (
        web_bp,
        lti_bp,
        home_bp,
        linking_bp,
        grading_bp,
        modules_bp,
        quiz_bp,
        discussions_bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    if config.demo:
        from lti_tool.demo.views import bp as demo_bp

        app.register_blueprint(demo_bp)

    app.jinja_env.globals["tool_version"] = __version__
    return app


def _demo_origins(config: Config) -> tuple[str, ...]:
    # The demo LMS is served on the other loopback name, so that it frames the tool cross-site
    # exactly as a real LMS does.
    return (f"http://localhost:{config.port}", f"http://127.0.0.1:{config.port}")
