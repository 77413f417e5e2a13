"""Communication between modules: proxies and remote calls, events, state and discovery."""

from .comm import Comm, Peer
from .proxy import Proxy

__all__ = ["Comm", "Peer", "Proxy"]
