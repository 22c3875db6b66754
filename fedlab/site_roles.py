"""A griffe extension for the site's API pages: the docstrings' reST roles as links.

fedlab's docstrings cross-reference in reST (``:class:`~fedlab.comm.Codec```,
``:func:`run```), which the API pages (Markdown, mkdocstrings) would show as raw text.
This extension, loaded by :func:`fedlab.site.build` only, rewrites each role that names a
fedlab object into an *optional* mkdocs-autorefs reference (a link when that object has
a place in the API pages, plain code when it has none, such as a private module), and
any other role into plain code (``:data:`PROFILES``` -> ```PROFILES```).
"""

from __future__ import annotations

import re

import griffe

__all__ = ["RestRoles", "convert"]

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc):`(~?)([^`<]+?)`")


def convert(text: str) -> str:
    """``text`` with every reST role replaced as described in the module docstring.

    Parameters
    ----------
    text : str
        A docstring.
    """
    def one(m: re.Match) -> str:
        short, target = m.group(1) == "~", m.group(2).strip()
        label = target.split(".")[-1] if short else target
        if target.startswith("fedlab."):
            return f'<autoref identifier="{target}" optional><code>{label}</code></autoref>'
        return f"`{label}`"
    return ROLE.sub(one, text)


class RestRoles(griffe.Extension):
    """Rewrites the roles of every docstring griffe reads (see the module docstring)."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
