"""Modules: the units of a pyobs system."""

from pyobs.comm.calls import not_cancellable

from .module import Module, raises, timeout
from .multimodule import MultiModule

__all__ = ["Module", "MultiModule", "not_cancellable", "raises", "timeout"]
