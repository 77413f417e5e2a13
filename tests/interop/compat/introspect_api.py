"""Print the public API of a `pyobs` package as JSON (run in each interpreter: ours and pyobs-core's).

Usage: python introspect_api.py MODULE [MODULE ...]  ->  {"module.Name": {...}, ...} on stdout.
Only what a module author touches: public names of the given modules, and for classes their public
methods and properties with signatures. Nothing is imported but the given modules.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import sys
from typing import Any


def _params(func: Any) -> list[dict[str, Any]] | None:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    return [
        {"name": p.name, "kind": p.kind.name, "default": p.default is not inspect.Parameter.empty}
        for p in sig.parameters.values()
    ]


def _is_async(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


def _member(cls: type, name: str) -> dict[str, Any] | None:
    raw = inspect.getattr_static(cls, name)
    if isinstance(raw, property):
        return {"kind": "property"}
    if isinstance(raw, staticmethod):
        return {"kind": "staticmethod", "async": _is_async(raw.__func__), "params": _params(raw.__func__)}
    if isinstance(raw, classmethod):
        return {"kind": "classmethod", "async": _is_async(raw.__func__), "params": _params(getattr(cls, name))}
    if inspect.isfunction(raw):
        return {"kind": "method", "async": _is_async(raw), "params": _params(raw)}
    if inspect.isroutine(raw):  # a method implemented in C (a datetime's strftime, ...)
        return {"kind": "method", "async": False, "params": _params(getattr(cls, name))}
    return None  # class attributes, nested classes: not compared


def _describe(value: Any) -> dict[str, Any]:
    if inspect.isclass(value):
        out: dict[str, Any] = {
            "kind": "class",
            "bases": [b.__name__ for b in value.__mro__[1:]],
            "enum": sorted(value.__members__) if issubclass(value, enum.Enum) else None,
            "init": _params(value.__init__) if "__init__" in dir(value) else None,
            "members": {},
        }
        for name in dir(value):
            if name.startswith("_"):
                continue
            if issubclass(value, enum.Enum) and name in value.__members__:
                continue
            m = _member(value, name)
            if m is not None:
                out["members"][name] = m
        # dataclass-style fields that exist on instances only (events): say which
        fields = getattr(value, "__dataclass_fields__", None)
        if fields:
            out["fields"] = sorted(fields)
        return out
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        return {"kind": "function", "async": _is_async(value), "params": _params(value)}
    if inspect.ismodule(value):
        return {"kind": "module"}
    return {"kind": "value", "type": type(value).__name__}


def public_names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
        # only what the module defines or re-exports from pyobs, not `import asyncio` & co.
        names = [
            n
            for n in names
            if not inspect.ismodule(getattr(module, n))
            and str(getattr(getattr(module, n), "__module__", module.__name__) or "").startswith("pyobs")
        ]
    return sorted(set(names))


def main(modules: list[str]) -> dict[str, Any]:
    api: dict[str, Any] = {}
    for modname in modules:
        try:
            module = importlib.import_module(modname)
        except Exception as exc:
            api[modname] = {"kind": "missing-module", "error": f"{type(exc).__name__}: {exc}"}
            continue
        api[modname] = {"kind": "module"}
        for name in public_names(module):
            if not hasattr(module, name):
                continue
            api[f"{modname}.{name}"] = _describe(getattr(module, name))
    return api


if __name__ == "__main__":
    json.dump(main(sys.argv[1:]), sys.stdout, indent=1, sort_keys=True)
