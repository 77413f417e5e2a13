from __future__ import annotations

from typing import Any

from ..comm import Comm
from .transport import DbusTransport


class DbusComm(Comm):
    """Comm between modules on one D-Bus bus (one machine, no server to run).

    Args:
        name: the module's name; it owns the well-known name ``<prefix>.<name>``.
        bus: ``"session"`` (default), ``"system"`` or an address such as ``"unix:path=/run/pyobs/bus"``.
        prefix: well-known name prefix; only modules with the same prefix see each other.
        timeout: default call deadline in seconds (also bounds the transport's own bus requests).
        event_queue_size: events kept while the bus is away (the oldest are dropped when it is full).
        **limits: the bounds of :class:`~pyobs.comm.Comm` (``max_call_timeout``, ``max_calls``, …).

    In YAML::

        comm:
          class: pyobs.comm.dbus.DbusComm
          name: camera
    """

    def __init__(
        self,
        name: str,
        bus: str = "session",
        prefix: str = "org.pyobs.module",
        timeout: float = 10.0,
        event_queue_size: int = 10000,
        **limits: Any,
    ) -> None:
        super().__init__(
            DbusTransport(name, bus=bus, prefix=prefix, timeout=timeout),
            timeout=timeout,
            event_queue_size=event_queue_size,
            **limits,
        )

    @property
    def bus_name(self) -> str:
        """Our well-known D-Bus name."""
        transport = self.transport
        assert isinstance(transport, DbusTransport)
        return transport.bus_name
