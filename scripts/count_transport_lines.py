"""Count the lines of the network transport packages (issue #12's "shrink measurably").

For each package (pyobs/comm/xmpp, pyobs/comm/dbus) it prints two figures over the same file set:
``wc`` (every line, as ``wc -l``) and ``code`` (lines that are neither blank, nor a comment, nor part
of a docstring). Codecs are excluded (they encode the wire format and are not transport logic):
xmpp's values.py, rpc.py, limits.py and pubsub.py, D-Bus's codec.py. Tests are outside the packages
anyway. ``__init__.py`` is counted.

    python3 scripts/count_transport_lines.py            # the working tree
    python3 scripts/count_transport_lines.py --rev REV  # a commit (read with git show)
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

PACKAGES = {
    "pyobs/comm/xmpp": {"values.py", "rpc.py", "limits.py", "pubsub.py"},
    "pyobs/comm/dbus": {"codec.py"},
}
ROOT = Path(__file__).resolve().parent.parent


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    docstring_lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                end = body[0].end_lineno or body[0].lineno
                docstring_lines.update(range(body[0].lineno, end + 1))
    with_code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (
            tokenize.COMMENT,
            tokenize.NL,
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
        ):
            continue
        with_code.update(range(token.start[0], token.end[0] + 1))
    return len(with_code - docstring_lines)


def package_files(package: str, rev: str | None) -> dict[str, str]:
    """The package's .py files (codecs excluded) and their text, in the tree or at ``rev``."""
    excluded = PACKAGES[package]
    if rev is None:
        paths = sorted((ROOT / package).glob("*.py"))
        return {p.name: p.read_text() for p in paths if p.name not in excluded}
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{rev}:{package}"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    files = {}
    for name in sorted(listing):
        if name.endswith(".py") and name not in excluded:
            files[name] = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{rev}:{package}/{name}"],
                check=True, capture_output=True, text=True,
            ).stdout
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="count a commit instead of the working tree")
    parser.add_argument("--files", action="store_true", help="also print each file's figures")
    args = parser.parse_args()
    print(f"{'package':<20} {'wc':>6} {'code':>6}  ({args.rev or 'working tree'}; codecs excluded)")
    for package, excluded in PACKAGES.items():
        files = package_files(package, args.rev)
        if not files:
            print(f"{package:<20} {'-':>6} {'-':>6}  (not there)")
            continue
        counts = {name: (text.count("\n"), code_lines(text)) for name, text in files.items()}
        total_wc = sum(wc for wc, _ in counts.values())
        total_code = sum(code for _, code in counts.values())
        print(f"{package:<20} {total_wc:>6} {total_code:>6}  excluded: {', '.join(sorted(excluded))}")
        if args.files:
            for name, (wc, code) in counts.items():
                print(f"  {name:<18} {wc:>6} {code:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
