"""Modules: the units of a pyobs system."""

from .module import Module, timeout
from .multimodule import MultiModule

__all__ = ["Module", "MultiModule", "timeout"]
