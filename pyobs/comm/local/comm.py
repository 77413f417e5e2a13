from __future__ import annotations

from typing import Any

from ..comm import Comm
from .network import LocalNetwork
from .transport import LocalTransport


class LocalComm(Comm):
    """Comm between modules in the same process.

    Args:
        name: the module's name.
        network: the network to meet others on (default: one per process).
        timeout: default call deadline in seconds.
        **limits: the bounds of :class:`~pyobs.comm.Comm` (``max_call_timeout``, ``max_calls``, …).

    A call runs the callee's method in a task of its own (a method that does not wait finishes
    at once, without one): cancelling the caller's task or passing the deadline cancels the
    callee's method through the same cancel as on every other transport.
    """

    def __init__(
        self, name: str, network: LocalNetwork | None = None, timeout: float = 10.0, **limits: Any
    ) -> None:
        super().__init__(LocalTransport(name, network), timeout=timeout, **limits)

    @property
    def network(self) -> LocalNetwork:
        transport = self.transport
        assert isinstance(transport, LocalTransport)
        return transport.network
