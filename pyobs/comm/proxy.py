"""Proxies: local stand-ins for remote modules, built from the interfaces the module implements."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from pyobs.interfaces.interface import Interface, MethodSpec, methods_of

from .calls import Call, proxy_method

if TYPE_CHECKING:
    from .comm import Comm, Peer

T = TypeVar("T")
#: ``async (state, sender)``, or pyobs-core's sync ``(state)``
StateHandler = Callable[..., Any]


class Proxy:
    """A remote module. Has every method of every interface the module implements.

    State and capabilities are read without a call, as in pyobs-core: the comm subscribes to
    every state the module publishes when it makes the proxy, so ``proxy.get_state(IFocuser)``
    (synchronous) returns the latest value at once; ``proxy.get_capabilities(ICamera)`` returns
    them once fetched (a fetch starts with the proxy; ``await proxy.wait_for_capabilities(...)``).
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

    @property
    def method_names(self) -> list[str]:
        """Names of all methods of the module, sorted."""
        return sorted(methods_of(self._peer.interfaces))

    def interface_method(self, method: str) -> Any:
        """The declaration of ``method`` in its interface (KeyError if the module has none)."""
        spec = methods_of(self._peer.interfaces)[method]
        return getattr(spec.interface, method)

    def signature(self, method: str) -> inspect.Signature:
        """The signature of ``method`` as its interface declares it."""
        return inspect.signature(self.interface_method(method))

    async def execute(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a method by name (a coroutine, as in pyobs-core; ``proxy.<method>()`` returns the
        :class:`~pyobs.comm.calls.Call` handle with progress). Cancelling it cancels the call."""
        spec = methods_of(self._peer.interfaces).get(method)
        if spec is None:
            raise AttributeError(f"module '{self.name}' has no method '{method}'")
        return await Call(self._comm, self._peer, spec, args, kwargs)

    def get_state(self, interface: type[Interface], *, max_age: float | None = None) -> Any:
        """Latest published state of ``interface`` (None if none yet, or older than ``max_age`` s).

        Synchronous: reads the cache the comm keeps up to date (see the class docstring).
        """
        return self._comm.cached_state(self.name, interface, max_age)

    async def fetch_state(self, interface: type[Interface], max_age: float | None = None) -> Any:
        """Like :meth:`get_state`, but subscribes first if the comm has not yet (the async form)."""
        return await self._comm.get_state(self.name, interface, max_age=max_age)

    async def subscribe_state(self, interface: type[Interface], handler: StateHandler) -> None:
        """Call ``handler`` on every change of the module's state of ``interface``
        (``async (state, sender)`` or a sync ``(state)``)."""
        await self._comm.subscribe_state(self.name, interface, handler)

    async def unsubscribe_state(self, interface: type[Interface], handler: StateHandler) -> None:
        await self._comm.unsubscribe_state(self.name, interface, handler)

    async def wait_for_state(
        self,
        interface: type[Interface],
        *args: Any,
        timeout: float | None = None,
        predicate: Callable[[Any], bool] | None = None,
        max_age: float | None = None,
    ) -> Any:
        """The state at once if one is known (and satisfies ``predicate`` / is at most ``max_age`` s
        old), else the next one that does, waiting at most ``timeout`` s (default 10); None on expiry.

        Called as pyobs-core does, ``wait_for_state(I, 2.0)``, or in this package's older order,
        ``wait_for_state(I, predicate, 2.0)``: a callable positional argument is the predicate.
        """
        for arg in args:
            if callable(arg) and predicate is None:
                predicate = arg
            elif isinstance(arg, (int, float)) and not isinstance(arg, bool) and timeout is None:
                timeout = float(arg)
            else:
                raise TypeError(f"wait_for_state(): unexpected argument {arg!r} (expected a timeout and a predicate)")
        seconds = 10.0 if timeout is None else float(timeout)
        test = predicate

        def wanted(state: Any) -> bool:
            if max_age is not None and self._comm.cached_state(self.name, interface, max_age) is not state:
                return False
            return test is None or bool(test(state))

        return await self._comm.wait_for_state(self.name, interface, wanted, seconds)

    def get_capabilities(self, interface: type[Interface]) -> Any:
        """Capabilities of ``interface`` if already fetched, else None (synchronous, as in pyobs-core)."""
        return self._comm.cached_capabilities(self.name, interface)

    async def fetch_capabilities(self, interface: type[Interface]) -> Any:
        """Capabilities of ``interface``, fetched now if not yet known (the async form)."""
        return await self._comm.get_capabilities(self.name, interface)

    async def wait_for_capabilities(self, interface: type[Interface], timeout: float = 10.0) -> Any:
        """Capabilities once the fetch started with the proxy is done (at most ``timeout`` s; else None)."""
        known = self.get_capabilities(interface)
        if known is not None:
            return known
        return await self._comm.wait_for_capabilities(self.name, interface, timeout)

    async def __aenter__(self) -> Proxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __repr__(self) -> str:
        names = ", ".join(i.__name__ for i in self._peer.interfaces)
        return f"<Proxy {self.name} [{names}]>"


def _remote_method(spec: MethodSpec) -> Callable[..., Call]:
    # returns a Call handle: awaitable like a coroutine, plus progress and the outcome of a cancel
    method = proxy_method(spec)
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
