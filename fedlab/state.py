"""States: what fedlab keeps between rounds, as tensors.

A model's state (and every message on the wire) is a flat ``{name: tensor}`` dict, as
``nn.Module.state_dict()`` gives it. The state a strategy keeps between rounds (its
server state, each site's own state) may nest: a wrapper keeps the state of the strategy
it wraps under ``"base"`` and its own under its name (``{"base": {...}, "dp": {...}}``),
a server optimiser its moments under ``"m"`` and ``"v"``. Only a checkpoint, whose
safetensors file holds flat names, flattens the tree (:func:`flatten`) and restores it
exactly (:func:`unflatten`).
"""

from __future__ import annotations

from typing import Union

import torch

__all__ = ["State", "Tree", "clone", "empty_paths", "flatten", "unflatten"]

State = dict[str, torch.Tensor]
Tree = dict[str, Union[torch.Tensor, "Tree"]]


def clone(tree: Tree) -> Tree:
    """A detached copy of every tensor of ``tree``, nested dicts copied too."""
    return {k: clone(v) if isinstance(v, dict) else v.detach().clone() for k, v in tree.items()}


def flatten(tree: Tree, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], torch.Tensor]:
    """Every tensor of ``tree`` under the path of keys that leads to it, in order."""
    out: dict[tuple[str, ...], torch.Tensor] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, (*path, key)))
        elif isinstance(value, torch.Tensor):
            out[(*path, key)] = value
        else:
            raise TypeError(f"a state holds tensors and dicts of them; {'/'.join((*path, key))!r}"
                            f" is a {type(value).__name__}")
    return out


def empty_paths(tree: Tree, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of the empty dicts inside ``tree``, which :func:`flatten` cannot show."""
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += empty_paths(value, (*path, key)) if value else [(*path, key)]
    return out


def unflatten(items: dict[tuple[str, ...], torch.Tensor],
              empty: list[tuple[str, ...]] = ()) -> Tree:
    """The tree :func:`flatten` came from, with the empty dicts at the paths ``empty``
    (see :func:`empty_paths`)."""
    tree: Tree = {}
    for path in empty:
        node = tree
        for key in path:
            node = node.setdefault(key, {})
    for path, value in items.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree
