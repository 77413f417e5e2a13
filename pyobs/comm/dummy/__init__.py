"""The comm of a module that runs in isolation."""

from .comm import DummyComm

__all__ = ["DummyComm"]
