"""A small, safe evaluator of arithmetic expressions (pyobs-core's ``@timeout("exposure_time + 10")``)."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
#: longest expression accepted, and largest exponent (a timeout never needs more)
MAX_LENGTH = 200
MAX_EXPONENT = 16


def evaluate_expression(text: str, variables: Mapping[str, Any]) -> float:
    """Numbers, the given variables, + - * / // % ** and parentheses; ValueError for anything else."""
    if len(text) > MAX_LENGTH:
        raise ValueError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"invalid expression {text!r}: {exc.msg}") from None
    return float(_eval(tree.body, variables, text))


def _eval(node: ast.AST, variables: Mapping[str, Any], text: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in variables:
            raise ValueError(f"unknown name {node.id!r} in {text!r}")
        value = variables[node.id]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{node.id!r} in {text!r} is not a number: {value!r}")
        return value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, variables, text), _eval(node.right, variables, text)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError(f"exponent {right} too large in {text!r}")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, variables, text))
    raise ValueError(f"unsupported element in expression {text!r}")
