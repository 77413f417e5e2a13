"""Modules: the units of a pyobs system."""

from .module import Module, raises, timeout
from .multimodule import MultiModule

__all__ = ["Module", "MultiModule", "raises", "timeout"]
