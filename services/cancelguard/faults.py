"""Fault points for the tests: stop this process dead (SIGKILL) at a named point, so a test reaches the
moment it guards every run, not by luck. Off unless CANCELGUARD_FAULT_KILL_AT names the point; nothing
in production sets it.
"""

from __future__ import annotations

import os
import signal

ENV = "CANCELGUARD_FAULT_KILL_AT"

# a batch that raised alerts has committed; they are in the outbox, not on the topic yet
ALERTS_COMMITTED = "alerts-committed"
# alerts are on the topic; the outbox does not know yet
ALERTS_PUBLISHED = "alerts-published"


def reached(point: str) -> None:
    if os.environ.get(ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
