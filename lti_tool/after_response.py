"""Work a request leaves for after its response is sent (grade delivery, roster refresh).

It runs in the serving thread once the response is out, so the user never waits on an LMS.
`wait_idle` lets an orderly shutdown (and the tests) wait for it to finish.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from flask import Response

log = logging.getLogger(__name__)


class AfterResponse:
    def __init__(self) -> None:
        self._active = 0
        self._idle = threading.Condition()

    def schedule(self, response: Response, work: Callable[[], None], what: str) -> None:
        # Counted from now, not from when it starts: the client has the response before the
        # server closes it and runs the work, and `wait_idle` must not miss work in that gap.
        finished = [False]

        def _done() -> None:
            with self._idle:
                if finished[0]:
                    return
                finished[0] = True
                self._active -= 1
                self._idle.notify_all()

        def _run() -> None:
            try:
                work()
            except Exception:
                log.exception("after-response work failed: %s", what)
            finally:
                _done()

        with self._idle:
            self._active += 1
        response.call_on_close(_run)
        # A response dropped without being sent (replaced by an error page) never runs it.
        weakref.finalize(response, _done)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True
