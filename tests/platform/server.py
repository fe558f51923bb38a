"""Serve a WSGI app on loopback in a background thread, as a real HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server


class _Dispatch:
    """Lets the server start (and so know its port) before the app that needs the port exists."""

    def __init__(self) -> None:
        self.app: Callable[..., Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.app is not None, "no app mounted"
        return self.app(environ, start_response)


class LiveServer:
    def __init__(self, host: str = "127.0.0.1", url_host: str | None = None) -> None:
        self._dispatch = _Dispatch()
        self.server: BaseWSGIServer = make_server(host, 0, self._dispatch, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://{url_host or host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def mount(self, app: Callable[..., Any]) -> None:
        self._dispatch.app = app

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
