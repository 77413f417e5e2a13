"""The one retry pacing of the comm layer: exponential backoff with jitter and a cap.

Every loop that retries something (reconnecting to a server or bus, subscribing to a node that
does not exist yet, asking a peer again) takes its pauses from :func:`backoff`, so the pacing is
the same everywhere and tuned in one place. Jitter keeps modules that lost the same server from
retrying in lock-step when it comes back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

#: reconnecting to a server or bus: the first pause, and the longest pause between two attempts [s]
RECONNECT_FIRST = 0.02
RECONNECT_CAP = 1.0
#: asking again for something that is not there yet (e.g. a node a peer creates late) [s]
RETRY_FIRST = 0.2
RETRY_CAP = 30.0


def backoff(
    first: float = RECONNECT_FIRST,
    cap: float = RECONNECT_CAP,
    *,
    factor: float = 2.0,
    jitter: float = 0.2,
    attempts: int | None = None,
) -> Iterator[float]:
    """Pauses between retries: ``first``, ``first * factor``, … up to ``cap`` seconds (a ``first``
    above ``cap`` is the cap as well).

    Each pause is shortened by a random fraction of up to ``jitter`` (never lengthened, so the cap
    holds). The iterator is endless unless ``attempts`` bounds the number of pauses.
    """
    if first <= 0:
        raise ValueError(f"backoff needs a first pause > 0, got {first}")
    cap = max(cap, first)
    if factor < 1 or not 0 <= jitter < 1:
        raise ValueError(f"backoff needs factor >= 1 and 0 <= jitter < 1, got {factor}, {jitter}")
    delay = first
    count = 0
    while attempts is None or count < attempts:
        yield delay * (1.0 - jitter * random.random())
        delay = min(delay * factor, cap)
        count += 1
