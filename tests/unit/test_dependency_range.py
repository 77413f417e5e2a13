"""The supported dependency ranges are the ones tested: scripts/test-lowest-deps.sh installs exactly
the lower bounds of pyproject.toml, and the main run has a version inside the range."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def _ranges() -> dict[str, tuple[str, str]]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    out = {}
    for spec in extras["all"]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+),<([0-9.]+)", spec)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def _release(version: str) -> tuple[int, ...]:
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def test_transport_dependencies_have_a_tested_range() -> None:
    ranges = _ranges()
    assert set(ranges) >= {"slixmpp", "dbus-fast"}, ranges
    script = (ROOT / "scripts" / "test-lowest-deps.sh").read_text()
    pinned = {
        "slixmpp": re.search(r'SLIXMPP_LOWEST="([^"]+)"', script),
        "dbus-fast": re.search(r'DBUS_FAST_LOWEST="([^"]+)"', script),
    }
    for name, m in pinned.items():
        assert m is not None, f"scripts/test-lowest-deps.sh does not pin {name}"
        assert _release(m.group(1)) == _release(ranges[name][0]), (name, m.group(1), ranges[name])


@pytest.mark.parametrize("name", ["slixmpp", "dbus-fast"])
def test_installed_version_is_inside_the_range(name: str) -> None:
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{name} is not installed")
    low, high = _ranges()[name]
    assert _release(low) <= _release(installed) < _release(high), (name, installed, low, high)
