"""D-Bus transport: every module a D-Bus service on one bus (see docs/dbus.md)."""

from .comm import DbusComm
from .transport import DbusTransport

__all__ = ["DbusComm", "DbusTransport"]
