"""Config files as pyobs-core reads them: ``{include file.yaml [key.path]}`` and global defaults.

An include line is replaced by the content of another YAML file (relative to the including file),
or by the part of it under ``key.path``, indented like the include::

    class: pyobs.modules.camera.DummyCamera
    {include _environment.yaml}
    comm:
      {include _comm.yaml}
    filters:
      - {include _filters.yaml red}

As in pyobs-core, a whole-file include drops the file's top-level keys that only hold an anchor
(``comm_cfg: &comm``), and ``<<: *comm`` in the including file is replaced by that anchor's value.
Includes nest (at most :data:`MAX_INCLUDE_DEPTH` deep, :data:`MAX_INCLUDES` in all); a cycle, a
missing file or key is a :class:`ConfigError` naming the file and the problem.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from pyobs.utils import safeyaml
from pyobs.utils.exceptions import ConfigError

#: how deep includes may nest, and how many one config may pull in altogether
MAX_INCLUDE_DEPTH = 8
MAX_INCLUDES = 200

_INCLUDE = re.compile(r"^(?P<indent>[ \t]*)(?P<prefix>(?:-[ \t]+)|(?:[^\s#{][^#{]*?:[ \t]+))?"
                      r"\{include[ \t]+(?P<file>\S+?)(?:[ \t]+(?P<key>[^\s}]+))?[ \t]*\}[ \t]*$")  # fmt: skip
_ANCHOR_HOLDER = re.compile(r"^(?P<key>[^\s:#][^:#]*):[ \t]+&(?P<anchor>\S+)[ \t]*$", re.MULTILINE)
_MERGE = re.compile(r"^(?P<indent>[ \t]*)<<:[ \t]*\*(?P<anchor>\S+)[ \t]*$", re.MULTILINE)

#: keys of a ``pyobs:`` section (global config file, PYOBS_* variables) that pyobs-core knows
GLOBAL_CONFIG_KEYS = ("log_level", "syslog", "influx_log", "debug_time", "iers_offline")
#: where pyobs-core looks for the global config file; the first that exists is read
GLOBAL_CONFIG_FILES = ("~/.config/pyobs.yaml", "/etc/pyobs.yaml", "/opt/pyobs/storage/pyobs.yaml")


def pre_process_yaml(config: str) -> str:
    """The text of the YAML file ``config`` with every ``{include ...}`` replaced (pyobs-core's name)."""
    return _Includer().expand(Path(config), [])


class _Includer:
    def __init__(self) -> None:
        self.count = 0

    def expand(self, path: Path, stack: list[Path]) -> str:
        path = path.resolve()
        if path in stack:
            chain = " -> ".join(p.name for p in [*stack, path])
            raise ConfigError(str(stack[0]), f"include cycle: {chain}")
        if len(stack) >= MAX_INCLUDE_DEPTH:
            raise ConfigError(str(stack[0]), f"includes nested deeper than {MAX_INCLUDE_DEPTH} (at {path.name})")
        text = _read(path, stack)
        if "{include" not in text:
            return text
        out: list[str] = []
        sources: list[tuple[str, Path, str]] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            m = _INCLUDE.match(line)
            if m is None:
                out.append(line)
                continue
            self.count += 1
            if self.count > MAX_INCLUDES:
                raise ConfigError(str(path), f"line {lineno}: more than {MAX_INCLUDES} includes")
            target = (path.parent / m["file"]).resolve()
            included_text = self.expand(target, [*stack, path])
            where = f"{path}: line {lineno}"
            value = _load(included_text, target, where)
            key = m["key"]
            if key:
                value = _select(value, key, target, where)
            elif isinstance(value, dict):
                holders = {h["key"].strip() for h in _ANCHOR_HOLDER.finditer(included_text)}
                value = {k: v for k, v in value.items() if k not in holders}
            out.extend(_render(value, m["indent"], m["prefix"] or ""))
            sources.append((included_text, target, where))
        result = "\n".join(out)
        for included_text, target, where in sources:  # anywhere in the file, also before the include
            result = _replace_merges(result, included_text, target, where)
        return result + "\n"


def _read(path: Path, stack: list[Path]) -> str:
    who = f"{stack[-1]}: include of {path.name}" if stack else str(path)
    limit = safeyaml.MAX_BYTES
    try:
        with path.open("rb") as f:  # bounded: a config (or an include) naming /dev/zero must not hang
            data = f.read(limit + 1)
    except OSError as exc:
        raise ConfigError(who, f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConfigError(who, f"refused: file too large (more than {limit} bytes)")
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(who, f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None


def _load(text: str, path: Path, where: str) -> Any:
    try:
        return safeyaml.load(text)
    except safeyaml.YamlLimitError as exc:
        raise ConfigError(where, f"included {path.name}: refused: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(where, f"included {path.name}{at}: invalid YAML: {getattr(exc, 'problem', exc)}") from None


def _select(value: Any, key: str, path: Path, where: str) -> Any:
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ConfigError(where, f"included {path.name} has no key '{key}'")
        value = value[part]
    return value


def _render(value: Any, indent: str, prefix: str) -> list[str]:
    """``value`` as block YAML lines at ``indent``, after ``prefix`` (``- `` or ``key: ``)."""
    if isinstance(value, dict) and not value and not prefix:
        return []  # nothing to splice in (pyobs-core drops an emptied whole-file include too)
    lines = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, indent=2).rstrip("\n").split("\n")
    if lines and lines[-1] == "...":  # a scalar document end marker
        lines = lines[:-1]
    if prefix.startswith("-"):
        head = indent + prefix
        rest = indent + " " * len(prefix)
        return [head + lines[0], *(rest + ln for ln in lines[1:])]
    if prefix:  # "key: {include x}": a scalar stays on the line, a block goes below, indented
        if not isinstance(value, (dict, list)) or not value:
            return [indent + prefix + lines[0], *(indent + "  " + ln for ln in lines[1:])]
        return [indent + prefix.rstrip(), *(indent + "  " + ln for ln in lines)]
    return [indent + ln for ln in lines]


def _replace_merges(text: str, included_text: str, path: Path, where: str) -> str:
    """``<<: *anchor`` in ``text`` → the value of the top-level key holding ``&anchor`` in the included file."""
    anchors = {h["anchor"]: h["key"].strip() for h in _ANCHOR_HOLDER.finditer(included_text)}
    if not anchors or "<<:" not in text:
        return text
    data = _load(included_text, path, where)

    def merge(m: re.Match[str]) -> str:
        holder = anchors.get(m["anchor"])
        if holder is None or not isinstance(data, dict) or holder not in data:
            return m[0]  # an anchor of the file itself, or nested: YAML resolves it
        return "\n".join(_render(data[holder], m["indent"], ""))

    return _MERGE.sub(merge, text)


def load_yaml(path: str) -> Any:
    """Read a config file with its includes resolved; ConfigError naming the file, line and problem."""
    text = pre_process_yaml(path)
    try:
        # bounded: alias expansion, size and depth (a "billion laughs" is refused, not expanded)
        return safeyaml.load(text)
    except safeyaml.YamlLimitError as exc:
        raise ConfigError(path, f"refused: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, f"{where}invalid YAML: {problem}") from None


def global_defaults(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """pyobs-core's global defaults: the ``pyobs:`` section of the first of :data:`GLOBAL_CONFIG_FILES`
    that exists, then ``PYOBS_<KEY>`` variables (which win); only :data:`GLOBAL_CONFIG_KEYS`."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name in GLOBAL_CONFIG_FILES:
        path = Path(os.path.expanduser(name))
        if not path.exists():
            continue
        try:
            data = safeyaml.load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(str(path), f"cannot read global config: {exc}") from None
        section = data.get("pyobs") if isinstance(data, dict) else None
        if section is not None and not isinstance(section, dict):
            raise ConfigError(f"{path}: pyobs", "expected a mapping")
        out.update({k: v for k, v in (section or {}).items() if k in GLOBAL_CONFIG_KEYS})
        break
    for key in GLOBAL_CONFIG_KEYS:
        value = env.get("PYOBS_" + key.upper())
        if value is not None:
            out[key] = value
    return out


__all__ = ["GLOBAL_CONFIG_FILES", "GLOBAL_CONFIG_KEYS", "global_defaults", "load_yaml", "pre_process_yaml"]
