"""Per-module access control: pyobs-core 2.19's ``acl:`` module option, enforced by the Comm core.

Forms (exactly one of ``allow``/``deny``, or neither for open access)::

    acl:
      allow:                       # only these callers, only these methods
        scheduler: "*"             # every method
        gui: [ITelescope, get_focus]   # interface names stand for all their methods
      mode: enforce                # default; "log" logs what would be denied and allows it

    acl:
      deny: [guest, webcam]        # every caller but these

Callers are module names as the transport reports them (never taken from a payload).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyobs.interfaces.interface import Interface, methods_of
from pyobs.utils.exceptions import ConfigError

log = logging.getLogger(__name__)

MODES = ("enforce", "log")
#: bounds on a config's size: an ACL is written by hand, anything bigger is a mistake
_MAX_CALLERS = 10_000
_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Acl:
    """A parsed ``acl:`` block.

    ``allow`` maps a caller to the method names it may call (None: every method); ``deny`` lists
    callers that may call nothing. At most one of the two is set.
    """

    allow: Mapping[str, frozenset[str] | None] | None = None
    deny: frozenset[str] | None = None
    mode: str = "enforce"

    @property
    def enforcing(self) -> bool:
        return self.mode == "enforce"

    def denies(self, sender: str, method: str) -> bool:
        """Whether the rules deny ``sender`` calling ``method`` (regardless of ``mode``)."""
        if self.allow is not None:
            if sender not in self.allow:
                return True
            methods = self.allow[sender]
            return methods is not None and method not in methods
        if self.deny is not None:
            return sender in self.deny
        return False

    def permitted(self, sender: str, methods: Iterable[str]) -> list[str]:
        """The methods ``sender`` may call; all of them while only logging (as pyobs-core)."""
        if not self.enforcing:
            return list(methods)
        return [m for m in methods if not self.denies(sender, m)]

    @classmethod
    def from_config(cls, config: Any, interfaces: Iterable[type[Interface]], key: str = "acl") -> Acl | None:
        """Parse an ``acl:`` block for a module implementing ``interfaces``; None for open access.

        Raises ConfigError naming the key and the problem for anything that is not one of the forms.
        """
        if config is None:
            return None
        if not isinstance(config, Mapping):
            raise ConfigError(key, f"expected a mapping with 'allow:' or 'deny:' (and 'mode:'), got {config!r}")
        unknown = sorted(str(k) for k in config if k not in ("allow", "deny", "mode"))
        if unknown:
            # pyobs-core ignores unknown keys; a misspelt 'allow' would silently open the module
            raise ConfigError(f"{key}.{unknown[0]}", "unknown key (known: allow, deny, mode)")
        allow_cfg = config.get("allow")
        deny_cfg = config.get("deny")
        mode = config.get("mode", "enforce")
        if allow_cfg is not None and deny_cfg is not None:
            raise ConfigError(key, 'acl config must set either "allow" or "deny", not both.')
        if mode not in MODES:
            raise ConfigError(f"{key}.mode", f'Invalid acl mode "{mode}", must be "enforce" or "log".')
        allow = None if allow_cfg is None else _parse_allow(allow_cfg, list(interfaces), f"{key}.allow")
        deny = None if deny_cfg is None else frozenset(_names(deny_cfg, f"{key}.deny", "caller names"))
        return cls(allow=allow, deny=deny, mode=str(mode))


def _names(value: Any, key: str, what: str) -> list[str]:
    """A list of non-empty strings; a single string counts as a list of one."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise ConfigError(key, f"expected a list of {what}, got {value!r}")
    if len(items) > _MAX_ENTRIES:
        raise ConfigError(key, f"too many entries ({len(items)} > {_MAX_ENTRIES})")
    return items


def _parse_allow(config: Any, interfaces: list[type[Interface]], key: str) -> dict[str, frozenset[str] | None]:
    if not isinstance(config, Mapping):
        raise ConfigError(key, f"expected a mapping of caller to '*' or a list of methods, got {config!r}")
    if len(config) > _MAX_CALLERS:
        raise ConfigError(key, f"too many callers ({len(config)} > {_MAX_CALLERS})")
    own_methods = set(methods_of(interfaces))
    by_interface = {i.__name__: set(methods_of([i])) for i in interfaces}
    allow: dict[str, frozenset[str] | None] = {}
    for caller, entries in config.items():
        if not isinstance(caller, str) or not caller:
            raise ConfigError(key, f"caller names must be non-empty strings, got {caller!r}")
        ckey = f"{key}.{caller}"
        if entries == "*":
            allow[caller] = None
            continue
        methods: set[str] = set()
        for entry in _names(entries, ckey, "method or interface names, or '*'"):
            if entry in by_interface:
                methods |= by_interface[entry]
            else:
                if entry not in own_methods:
                    # kept, as pyobs-core does; it can only make the rule stricter, but it is likely a typo
                    log.warning("%s: '%s' is neither a method nor an interface of this module", ckey, entry)
                methods.add(entry)
        allow[caller] = frozenset(methods)
    return allow
