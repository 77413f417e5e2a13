"""The API of pyobs-core 2.19.1, name by name and signature by signature, against ours (docs/compat.md).

The same introspection script runs in pyobs-core's venv and in this interpreter; every name of theirs
must be usable here the same way or be on the reasoned allowlist in docs/compat.md. A row of the
allowlist that matches nothing fails too, so the list stays exact.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE / "compat"))

from api_compare import compare, count_names  # noqa: E402

#: the modules the comm layer and the module framework touch (issue #15)
MODULES = [
    "pyobs.object",
    "pyobs.modules",
    "pyobs.comm",
    "pyobs.comm.proxy",
    "pyobs.comm.local",
    "pyobs.comm.dummy",
    "pyobs.comm.xmpp",
    "pyobs.events",
    "pyobs.interfaces",
    "pyobs.interfaces.interface",
    "pyobs.utils.exceptions",
    "pyobs.utils.enums",
    "pyobs.utils.parallel",
    "pyobs.utils.time",
    "pyobs.utils.config",
]
SCRIPT = HERE / "compat" / "introspect_api.py"


def _listing(python: str, ours: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if ours:
        env["PYTHONPATH"] = str(ROOT)
        args = [python, str(SCRIPT), *MODULES]
    else:
        args = [python, "-P", str(SCRIPT), *MODULES]  # -P: nothing of ours on its path
    proc = subprocess.run(args, cwd="/", env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def allowlist() -> dict[str, str]:
    """Pattern → reason, from the table under '## API allowlist' in docs/compat.md."""
    text = (ROOT / "docs" / "compat.md").read_text()
    section = text.split("## API allowlist", 1)[1]
    rows = {}
    for m in re.finditer(r"^\| `([^`]+)` \| (.+?) \|$", section, re.MULTILINE):
        rows[m[1]] = m[2].strip()
    return rows


def test_allowlist_rows_have_reasons() -> None:
    rows = allowlist()
    assert len(rows) >= 5
    for pattern, reason in rows.items():
        assert pattern.startswith("pyobs."), pattern
        assert len(reason.split()) >= 5, f"{pattern}: give a reason, not '{reason}'"


def test_every_name_of_pyobs_core_exists_here_or_is_allowlisted(core_py: Path) -> None:
    theirs = _listing(str(core_py), ours=False)
    ours = _listing(sys.executable, ours=True)
    missing_modules = [m for m in MODULES if theirs.get(m, {}).get("kind") != "module"]
    assert not missing_modules, f"pyobs-core lacks {missing_modules}: is its venv pyobs-core 2.19.1?"
    problems = compare(theirs, ours)
    rows = allowlist()
    unexplained = {n: p for n, p in problems.items() if not any(fnmatch.fnmatchcase(n, pat) for pat in rows)}
    stale = [pat for pat in rows if not any(fnmatch.fnmatchcase(n, pat) for n in problems)]
    allowed = len(problems) - len(unexplained)
    print(f"\ncompared {count_names(theirs)} names of pyobs-core 2.19.1; {allowed} differences allowlisted by "
          f"{len(rows)} reasoned rows of docs/compat.md")  # fmt: skip
    assert not unexplained, "not in docs/compat.md:\n" + "\n".join(f"  {n}: {p}" for n, p in unexplained.items())
    assert not stale, f"allowlist rows that match nothing (remove them): {stale}"
