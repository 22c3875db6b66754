"""The API reference is only as good as the docstrings: every public class and function
(each name in ``fedlab.__all__``, and in the ``__all__`` of each namespace it lists:
``fl.data``, ``fl.strategies``, ..., plus ``fl.widgets``) has one, and it names each of
its parameters.

A parameter counts as documented when its name appears as a word in the docstring of the
function, of the class (or its ``__init__``), or of a class it inherits from (the
``combine`` slot is documented once, on :class:`fedlab.strategies.Strategy`).
"""

from __future__ import annotations

import inspect
import re

import pytest

import fedlab


def _namespaces() -> list:
    names = [n for n in fedlab.__all__ if inspect.ismodule(getattr(fedlab, n, None))]
    return [fedlab] + [getattr(fedlab, n) for n in [*names, "widgets"]]


def _public() -> dict[str, object]:
    out: dict[str, object] = {}
    for module in _namespaces():
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr, None)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and \
                    obj.__module__.startswith("fedlab"):
                out.setdefault(f"{module.__name__}.{attr}", obj)
    return out


PUBLIC = _public()


def _texts(obj) -> str:
    texts = [inspect.getdoc(obj) or ""]
    if inspect.isclass(obj):
        for cls in obj.__mro__:
            if cls.__module__.startswith("fedlab"):
                texts += [cls.__doc__ or "", getattr(cls.__init__, "__doc__", None) or ""]
    return "\n".join(texts)


def _parameters(obj) -> list[str]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.name not in ("self", "cls") and not p.name.startswith("_")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_there_is_a_public_api_to_check():
    assert len(PUBLIC) > 200 and "fedlab.run" in PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_name_has_a_docstring_naming_its_parameters(name):
    obj = PUBLIC[name]
    assert (inspect.getdoc(obj) or "").strip(), f"{name} has no docstring"
    text = _texts(obj)
    missing = [p for p in _parameters(obj) if not re.search(rf"\b{re.escape(p)}\b", text)]
    assert not missing, f"{name}: the docstring does not mention {missing}"
