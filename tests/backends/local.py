from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from pyobs.comm import Comm
from pyobs.comm.local import LocalComm, LocalNetwork


class LocalBackend:
    kind = "local"
    multiprocess = False

    def __init__(self) -> None:
        self.network = LocalNetwork()

    def comm(self, name: str, timeout: float = 10.0, **limits: Any) -> Comm:
        return LocalComm(name, network=self.network, timeout=timeout, **limits)

    def comm_config(self, name: str) -> dict[str, Any]:
        raise NotImplementedError("LocalComm works within one process only")


@pytest.fixture
async def local_backend() -> AsyncIterator[LocalBackend]:
    yield LocalBackend()


class LocalOutageBackend(LocalBackend):
    """LocalComms whose links go down through the network's test hook."""

    async def cut(self) -> None:
        self.network.simulate_outage()

    async def restore(self) -> None:
        self.network.end_outage()


@pytest.fixture
async def local_outage_backend() -> AsyncIterator[LocalOutageBackend]:
    yield LocalOutageBackend()
