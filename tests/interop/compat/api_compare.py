"""Compare two API listings of introspect_api.py: is each of pyobs-core's names usable on ours?"""

from __future__ import annotations

from typing import Any

_POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
_KEYWORD = ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")


def params_problem(theirs: list[dict[str, Any]] | None, ours: list[dict[str, Any]] | None, bound: bool) -> str | None:
    """Why a call written against ``theirs`` would fail against ``ours`` (None: every such call works)."""
    if theirs is None or ours is None:
        return None  # a builtin without a signature: nothing to compare
    if bound:  # drop self / cls
        theirs, ours = theirs[1:], ours[1:]
    our_var_pos = any(p["kind"] == "VAR_POSITIONAL" for p in ours)
    our_var_kw = any(p["kind"] == "VAR_KEYWORD" for p in ours)
    our_by_name = {p["name"]: p for p in ours}
    our_positional = [p for p in ours if p["kind"] in _POSITIONAL]
    for i, p in enumerate(q for q in theirs if q["kind"] in _POSITIONAL):
        if i < len(our_positional):
            mine = our_positional[i]
            if p["kind"] == "POSITIONAL_OR_KEYWORD" and mine["name"] != p["name"] and not our_var_kw:
                return f"parameter {i + 1} is '{mine['name']}' here, '{p['name']}' in pyobs-core"
            if p["default"] and not mine["default"]:
                return f"parameter '{mine['name']}' is required here, optional in pyobs-core"
        elif not our_var_pos and not (p["kind"] == "POSITIONAL_OR_KEYWORD" and p["name"] in our_by_name):
            return f"takes no positional parameter '{p['name']}'"
    for p in theirs:
        if p["kind"] == "KEYWORD_ONLY":
            mine = our_by_name.get(p["name"])
            if mine is None or mine["kind"] not in _KEYWORD:
                if not our_var_kw:
                    return f"has no keyword parameter '{p['name']}'"
            elif p["default"] and not mine["default"]:
                return f"parameter '{p['name']}' is required here, optional in pyobs-core"
        elif p["kind"] == "VAR_POSITIONAL" and not our_var_pos:
            return "takes no *args"
        elif p["kind"] == "VAR_KEYWORD" and not our_var_kw:
            return "takes no **kwargs"
    their_names = {p["name"] for p in theirs}
    their_positional = sum(1 for p in theirs if p["kind"] in _POSITIONAL)
    for i, mine in enumerate(ours):
        if mine["kind"] in ("VAR_POSITIONAL", "VAR_KEYWORD") or mine["default"]:
            continue
        if mine["name"] not in their_names and not (mine["kind"] in _POSITIONAL and i < their_positional):
            return f"requires parameter '{mine['name']}' that pyobs-core does not have"
    return None


def _callable_problem(t: dict[str, Any], o: dict[str, Any], bound: bool) -> str | None:
    if t.get("async") != o.get("async"):
        return "is async here" if o.get("async") else "is not async here (pyobs-core: async)"
    return params_problem(t.get("params"), o.get("params"), bound)


def compare(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, str]:
    """Every name of theirs that is missing or incompatible on ours → the problem."""
    problems: dict[str, str] = {}
    for name, t in sorted(theirs.items()):
        o = ours.get(name)
        if o is None or o["kind"] == "missing-module":
            problems[name] = "missing"
            continue
        if t["kind"] != o["kind"]:
            problems[name] = f"is a {o['kind']} here, a {t['kind']} in pyobs-core"
            continue
        if t["kind"] == "function":
            p = _callable_problem(t, o, bound=False)
            if p:
                problems[name] = p
        if t["kind"] != "class":
            continue
        if t["enum"] is not None:
            missing = sorted(set(t["enum"]) - set(o["enum"] or []))
            if missing:
                problems[name] = f"enum lacks {', '.join(missing)}"
        p = params_problem(t.get("init"), o.get("init"), bound=True)
        if p:
            problems[f"{name}.__init__"] = p
        for fname in t.get("fields", []) or []:
            if fname not in (o.get("fields") or []) and fname not in o["members"]:
                problems[f"{name}.{fname}"] = "missing (attribute)"
        for mname, tm in sorted(t["members"].items()):
            om = o["members"].get(mname)
            key = f"{name}.{mname}"
            if om is None:
                if mname not in (o.get("fields") or []):
                    problems[key] = "missing"
                continue
            if (tm["kind"] == "property") != (om["kind"] == "property"):
                problems[key] = f"is a {om['kind']} here, a {tm['kind']} in pyobs-core"
                continue
            if tm["kind"] == "property":
                continue
            p = _callable_problem(tm, om, bound=tm["kind"] != "staticmethod" and om["kind"] != "staticmethod")
            if p:
                problems[key] = p
    return problems


def count_names(api: dict[str, Any]) -> int:
    """Names compared: module-level names plus class members."""
    return sum(1 + len(v.get("members", {})) for v in api.values())
