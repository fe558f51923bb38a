"""Structured logging: one JSON object per line, with no personal data and no tokens.

Log lines name ids (platform, course, member) and reasons, never names, emails, `sub`,
id_tokens or session tokens; request lines log the path without its query string.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from flask import Flask, Response, g, request


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def init_logging(app: Flask, *, testing: bool) -> None:
    root = logging.getLogger("lti_tool")
    if not testing and not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
        root.propagate = False
    request_log = logging.getLogger("lti_tool.request")

    @app.before_request
    def _start_timer() -> None:
        g._started = time.perf_counter()

    @app.after_request
    def _log_request(response: Response) -> Response:
        if request.path.startswith("/static/"):
            return response
        elapsed = (time.perf_counter() - g.get("_started", time.perf_counter())) * 1000
        request_log.info(
            "%s %s %s %.1fms", request.method, request.path, response.status_code, elapsed
        )
        return response
