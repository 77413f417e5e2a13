"""In-process transport: modules in one Python process (MultiModule, tests)."""

from .comm import LocalComm
from .network import LocalNetwork

__all__ = ["LocalComm", "LocalNetwork"]
