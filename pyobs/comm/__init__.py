"""Communication between modules: proxies and remote calls, events, state and discovery."""

from .calls import Call, CancelOutcome, Progress, not_cancellable, report_progress
from .comm import Comm, Peer
from .proxy import Proxy

__all__ = ["Call", "CancelOutcome", "Comm", "Peer", "Progress", "Proxy", "not_cancellable", "report_progress"]
