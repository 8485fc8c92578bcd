"""When a Soundlink request is sent again, after how long, and when the sync gives up: the one policy.

The client (no answer, 5xx, 408, 429), the window reader (a body cut mid-stream) and the manifest's
`campaigns` stream (the CDK's error handler, held to these numbers by unit_tests/test_manifest.py) all
follow it. Which answers are worth another try is errors.py's table (`classify`); this module adds the
failures that have no answer (connection errors, timeouts, a body that broke) and the numbers.

Why not the CDK's backoff strategies: they live in the declarative requester, which the export path
does not use (client.py says why), and they have no jitter, so parallel workers would retry in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import requests
import urllib3

from source_soundlink.errors import Action, Refusal, classify

# No answer, or a JSON answer whose body broke while get() read it: worth another try.
NO_ANSWER_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
# A streamed export body broke mid-way: the window is fetched again and resumed after the rows emitted.
BODY_CUT_ERRORS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.HTTPError,
    requests.RequestException,
    OSError,
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # sends of one request (5xx, 408, no answer), fetches of one window (cut body)
    backoff_base_s: float = 1.0  # the n-th retry waits base * 2^(n-1) s, jittered down to half of it
    # Soundlink's quota window: a key refused (429) for longer, or asked to wait longer, is being used up
    # by another client of the same key. The export heartbeats while it waits this long.
    max_retry_after_s: int = 3600
    # A read with no state to heartbeat with (the `campaigns` stream alone, or the manifest's stream where
    # the CDK runs it on its own) sleeps in silence: it waits out at most this long (half of metadata.yaml's
    # maxSecondsBetweenMessages) and fails beyond it.
    max_silent_retry_after_s: int = 600
    max_refusals: int = 10  # 429s in a row to requests sent after the key was known to be refused

    def silent(self) -> RetryPolicy:
        """This policy for a read that cannot heartbeat while it waits."""
        return replace(self, max_retry_after_s=self.max_silent_retry_after_s)

    def gives_up(self, attempts: int) -> bool:
        """True once `attempts` sends (or fetches) failed: report the last failure."""
        return attempts >= self.max_attempts

    def backoff_s(self, attempt: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
        """The wait before retry number `attempt` (1-based): exponential with full jitter, so parallel
        workers do not retry in lockstep."""
        return self.backoff_base_s * (2 ** (attempt - 1)) * uniform(0.5, 1.0)

    @staticmethod
    def retries(status: int, code: str | None) -> bool:
        """Whether an error answer is sent again after a backoff (errors.py's table decides)."""
        return classify(status, code).action is Action.RETRY

    @staticmethod
    def waits(status: int, code: str | None) -> bool:
        """Whether an error answer holds the key until its Retry-After (a 429)."""
        return classify(status, code).action is Action.WAIT

    def key_given_up(self, refusal: Refusal, retry_after_s: int) -> bool:
        """A refused key whose wait would outlast the quota window, or that keeps being refused."""
        return refusal.refused_for_s + retry_after_s > self.max_retry_after_s or (
            refusal.streak > self.max_refusals
        )


DEFAULT_POLICY = RetryPolicy()
# `check` answers at once rather than wait for a spent quota.
CHECK_POLICY = RetryPolicy(max_retry_after_s=60)
