"""Exponential backoff with jitter, bounded.

Delays double from `base_s` up to `cap_s`; each is jittered over its upper half ("equal jitter"), so
clients that failed together spread out but never retry sooner than half the nominal delay. At most
`max_attempts` tries in all (the first one included).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 0.5
    cap_s: float = 30.0
    max_attempts: int = 6

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < self.base_s or self.max_attempts < 1:
            raise ValueError(f"bad backoff {self}: need 0 <= base_s <= cap_s and max_attempts >= 1")

    def delay(self, failures: int, rng: random.Random) -> float:
        """The wait after the `failures`-th consecutive failure (1-based)."""
        nominal = min(self.cap_s, self.base_s * 2 ** max(0, failures - 1))
        return nominal / 2 + rng.uniform(0, nominal / 2)
