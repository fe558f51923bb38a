"""Work a request leaves for after its response is sent (grade delivery, roster refresh).

It runs in the serving thread once the response is out, so the user never waits on an LMS.
`wait_idle` lets an orderly shutdown (and the tests) wait for it to finish.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Response

log = logging.getLogger(__name__)


class AfterResponse:
    def __init__(self) -> None:
        self._active = 0
        self._idle = threading.Condition()

    def schedule(self, response: Response, work: Callable[[], None], what: str) -> None:
        def _run() -> None:
            with self._idle:
                self._active += 1
            try:
                work()
            except Exception:
                log.exception("after-response work failed: %s", what)
            finally:
                with self._idle:
                    self._active -= 1
                    self._idle.notify_all()

        response.call_on_close(_run)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True
