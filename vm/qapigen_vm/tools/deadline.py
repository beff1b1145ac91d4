"""How long each of qapigen-migrate's QMP calls may take, and what to say when one
takes longer.

Three bounds, the tightest wins: every call gets at most ``per_call`` seconds (a peer
that stops answering must not hang the command); ``--timeout`` bounds the whole run;
once a cancel has been sent, the migration gets ``cancel_grace`` more seconds to end
(the run's own deadline has usually passed by then, which is why it was cancelled).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CallLimits:
    """The bounds of one run; `limit` gives the next call's."""

    timeout: float | None  # --timeout, for the whole run
    per_call: float
    cancel_grace: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    _cancel_ends: float | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()

    def cancel_sent(self) -> None:
        """From now on the cancel's grace bounds the calls, not --timeout."""
        self._cancel_ends = self.clock() + self.cancel_grace

    @property
    def cancelling(self) -> bool:
        return self._cancel_ends is not None

    def expired(self) -> bool:
        """Whether --timeout has run out."""
        return self.timeout is not None and self.clock() - self.started >= self.timeout

    def grace_over(self) -> bool:
        """Whether a cancel was sent and its grace has run out."""
        return self._cancel_ends is not None and self.clock() >= self._cancel_ends

    def limit(self) -> tuple[float, str]:
        """(seconds the next call may take, what the limit is, for a message)."""
        now = self.clock()
        seconds, why = self.per_call, f"within {self.per_call:g} s"
        if self._cancel_ends is not None:
            left = self._cancel_ends - now
            if left < seconds:
                seconds = left
                why = f"within the {self.cancel_grace:g} s allowed after migrate_cancel"
        elif self.timeout is not None:
            left = self.started + self.timeout - now
            if left < seconds:
                seconds = left
                why = f"before --timeout {self.timeout:g} ran out"
        return max(seconds, 0.01), why
