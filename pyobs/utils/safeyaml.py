"""YAML for configs, loaded with bounds: a config author's mistake (or a hostile file) cannot make
``pyobs`` grow without bound or hang.

PyYAML expands aliases into shared references, and whatever walks the result afterwards (building
objects, copying, printing) visits every expansion: a few hundred bytes of nested aliases (a
"billion laughs") become billions of nodes. :func:`load` composes the node graph first (aliases are
still shared there), counts the nodes the document expands to — without expanding it — and refuses
documents above :data:`MAX_NODES`, files above :data:`MAX_BYTES`, recursive aliases and nesting
deeper than the parser can take, each with a ValueError naming the problem.
"""

from __future__ import annotations

from typing import Any

import yaml

#: the largest config file read (bytes)
MAX_BYTES = 4 * 1024 * 1024
#: the most nodes a document may expand to with its aliases resolved
MAX_NODES = 200_000


class YamlLimitError(ValueError):
    """A YAML document exceeds a bound; the message says which."""


def load(text: str, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> Any:
    """``yaml.safe_load`` within the bounds; YamlLimitError (a ValueError) or yaml.YAMLError otherwise."""
    if len(text) > max_bytes:
        raise YamlLimitError(f"file too large ({len(text)} characters; at most {max_bytes})")
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlLimitError("nested too deeply") from None
        if node is None:
            return None
        count = _expanded_size(node, max_nodes)
        if count > max_nodes:
            raise YamlLimitError(
                f"the document expands to more than {max_nodes} values through its aliases (&anchor/*alias)"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """How many nodes ``root`` stands for with every alias expanded (stops counting above ``limit``)."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()
    # iterative post-order walk: no recursion however deep the document nests
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not children_done:
            if key in busy:
                raise YamlLimitError("an alias refers to a value that contains it (recursive alias)")
            busy.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        busy.discard(key)
        total = 1
        for c in children:
            total += sizes.get(id(c), 0)
            if total > limit:
                break
        sizes[key] = min(total, limit + 1)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []
