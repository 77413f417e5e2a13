"""Proxies: local stand-ins for remote modules, built from the interfaces the module implements."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from pyobs.interfaces.interface import Interface, MethodSpec, methods_of

from .calls import Call

if TYPE_CHECKING:
    from .comm import Comm, Peer

T = TypeVar("T")
StateHandler = Callable[[Any, str], Awaitable[Any]]


class Proxy:
    """A remote module. Has every method of every interface the module implements.

    State is read without a call: ``await proxy.get_state(IFocuser)`` subscribes on first use
    and afterwards returns the latest value the module published.
    """

    def __init__(self, comm: Comm, peer: Peer) -> None:
        self._comm = comm
        self._peer = peer

    @property
    def name(self) -> str:
        return self._peer.name

    @property
    def label(self) -> str:
        return self._peer.label

    @property
    def interfaces(self) -> tuple[type[Interface], ...]:
        return self._peer.interfaces

    def implements(self, interface: type[Interface]) -> bool:
        return interface in self._peer.interfaces

    @property
    def online(self) -> bool:
        return self._comm._peers.get(self._peer.name) is self._peer

    def execute(self, method: str, *args: Any, **kwargs: Any) -> Call:
        """Call a method by name (returns the awaitable :class:`~pyobs.comm.calls.Call` handle)."""
        spec = methods_of(self._peer.interfaces).get(method)
        if spec is None:
            raise AttributeError(f"module '{self.name}' has no method '{method}'")
        return Call(self._comm, self._peer, spec, args, kwargs)

    async def get_state(self, interface: type[Interface], max_age: float | None = None) -> Any:
        """Latest published state of ``interface`` (None if none yet, or older than ``max_age`` s)."""
        return await self._comm.get_state(self.name, interface, max_age=max_age)

    async def subscribe_state(self, interface: type[Interface], handler: StateHandler) -> None:
        """Call ``handler(state, sender)`` on every change of the module's state of ``interface``."""
        await self._comm.subscribe_state(self.name, interface, handler)

    async def wait_for_state(
        self, interface: type[Interface], predicate: Callable[[Any], bool], timeout: float
    ) -> Any:
        """Wait (at most ``timeout`` s) until the state satisfies ``predicate``; returns it or None."""
        return await self._comm.wait_for_state(self.name, interface, predicate, timeout)

    async def get_capabilities(self, interface: type[Interface]) -> Any:
        return await self._comm.get_capabilities(self.name, interface)

    async def __aenter__(self) -> Proxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __repr__(self) -> str:
        names = ", ".join(i.__name__ for i in self._peer.interfaces)
        return f"<Proxy {self.name} [{names}]>"


def _remote_method(spec: MethodSpec) -> Callable[..., Call]:
    def method(self: Proxy, *args: Any, **kwargs: Any) -> Call:
        # a Call handle: awaitable like a coroutine, plus progress and the outcome of a cancel
        return Call(self._comm, self._peer, spec, args, kwargs)

    method.__name__ = spec.name
    method.__qualname__ = f"Proxy.{spec.name}"
    method.__doc__ = getattr(getattr(spec.interface, spec.name, None), "__doc__", None)
    return method


@functools.lru_cache(maxsize=256)
def proxy_class(interfaces: tuple[type[Interface], ...]) -> type[Proxy]:
    """A Proxy subclass implementing all ``interfaces`` (so ``isinstance(proxy, ICamera)`` holds)."""
    namespace: dict[str, Any] = {name: _remote_method(spec) for name, spec in methods_of(interfaces).items()}
    # only the most derived interfaces as bases, so the MRO is consistent
    leaves = tuple(i for i in interfaces if not any(o is not i and issubclass(o, i) for o in interfaces))
    name = "Proxy[" + ",".join(i.__name__ for i in leaves) + "]"
    try:
        return type(name, (Proxy, *leaves), namespace)
    except TypeError:  # no consistent MRO: fall back to a plain proxy with the same methods
        return type(name, (Proxy,), namespace)


class ProxyRequest(Awaitable[T]):
    """What ``proxy()`` returns: ``await`` it, or use it as ``async with self.proxy(...) as p``."""

    def __init__(self, factory: Callable[[], Awaitable[T]]) -> None:
        self._factory = factory

    def __await__(self) -> Generator[Any, None, T]:
        return self._factory().__await__()

    async def __aenter__(self) -> T:
        return await self._factory()

    async def __aexit__(self, *exc: object) -> None:
        return None
