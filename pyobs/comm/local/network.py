"""The in-process network LocalComms meet on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .transport import LocalTransport


class LocalNetwork:
    """Who is online in this process. Modules that close leave it (and calls to them fail)."""

    _default: LocalNetwork | None = None

    def __init__(self) -> None:
        self.members: dict[str, LocalTransport] = {}
        #: set by :meth:`simulate_outage` (tests only): every member's link is down
        self.outage: str | None = None

    @classmethod
    def default(cls) -> LocalNetwork:
        """The process-wide network used when none is given."""
        if cls._default is None:
            cls._default = cls()
        return cls._default

    def join(self, member: LocalTransport) -> None:
        current = self.members.get(member.name)
        if current is not None and current is not member:
            raise ValueError(f"a module named '{member.name}' is already online on this network")
        self.members[member.name] = member
        for other in list(self.members.values()):
            if other is not member and other.info is not None:
                member.see(other)
        for other in list(self.members.values()):
            if other is not member:
                other.see(member)

    def leave(self, member: LocalTransport) -> None:
        if self.members.get(member.name) is member:
            del self.members[member.name]
            for other in list(self.members.values()):
                # during a simulated outage nobody can be told (as on a server): the others' cores
                # give it up when their grace ends
                other.forget(member.name, report=self.outage is None)

    # -- for tests: what a server going away and coming back looks like to the members

    def simulate_outage(self, reason: str = "simulated outage of the local network") -> None:
        """For tests: every member's link goes down at once (as when the XMPP server or the D-Bus
        daemon stops). Calls, events and subscriptions raise NotConnected until :meth:`end_outage`;
        a member that closes meanwhile is not reported to the others (nobody can tell them)."""
        self.outage = reason
        for member in list(self.members.values()):
            member.link_changed(False, reason)

    def end_outage(self) -> None:
        """For tests: the links are back; every member sees the others again."""
        self.outage = None
        members = list(self.members.values())
        for member in members:
            for other in members:
                if other is not member and other.info is not None:
                    member.see(other)
        for member in members:
            member.link_changed(True)
