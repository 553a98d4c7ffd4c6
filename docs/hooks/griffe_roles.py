"""A griffe extension for the API reference: Sphinx roles in docstrings become links.

The library's docstrings are Google style with Sphinx cross-reference roles
(``:class:`~ctflow_gym.refine.TrajectoryRefiner```, ``:meth:`fit```). mkdocstrings renders
Markdown, where a role would show as raw text, so each one is rewritten into an *optional*
mkdocs-autorefs reference (``<autoref identifier="..." optional>``): a link where the target
is documented, plain code where it is not (an optional reference never warns, so the strict
build does not depend on which private names the reference pages show). A name without dots
is looked up beside the object that mentions it (its class, then its module). reST's
``Example::`` literal-block marker loses one colon (the indented block after it is already a
Markdown code block).

mkdocs.yml loads it as ``extensions: [docs/hooks/griffe_roles.py]`` of the python handler.
"""

from __future__ import annotations

import html
import re

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`<>]+)`")
LITERAL_MARKER = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)


def scope_paths(obj: Object) -> list[str]:
    """Where a dotless name mentioned in ``obj``'s docstring may live, nearest first."""
    paths = []
    current = obj if obj.is_class or obj.is_module else obj.parent
    while current is not None:
        paths.append(current.path)
        current = current.parent
    return paths


def resolve(name: str, obj: Object) -> str:
    """The identifier for ``name`` as written in ``obj``'s docstring."""
    name = name.strip().rstrip("()")
    if "." in name:
        return name
    for scope in scope_paths(obj):
        try:
            owner = obj.modules_collection[scope]
        except KeyError:
            continue
        member = owner.members.get(name)
        if member is not None:  # an imported name stands for what it imports
            return member.target_path if member.is_alias else member.path
    return f"{obj.module.path}.{name}"


def rewrite(text: str, obj: Object) -> str:
    """``text`` with every role replaced by an optional autoref and ``::`` markers reduced."""

    def link(match: re.Match) -> str:
        short, name = match.group(1) == "~", match.group(2).strip()
        shown = name.rstrip("()").split(".")[-1] + ("()" if name.endswith("()") else "") if short else name
        identifier = resolve(name, obj)
        return f'<autoref identifier="{html.escape(identifier)}" optional><code>{html.escape(shown)}</code></autoref>'

    return LITERAL_MARKER.sub(r"\1:", ROLE.sub(link, text))


def walk(obj: Object):
    """``obj`` and every object defined under it (aliases are rewritten where they are defined)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from walk(member)


class SphinxRoles(Extension):
    """Rewrite the docstring of every object of a loaded package (see the module docstring).

    Once per package, after the whole package is loaded (so that names can be looked up in it);
    the rewrite leaves no role behind, so a second pass would change nothing.
    """

    def on_package(self, *, pkg, **kwargs) -> None:
        for obj in walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj.docstring.value, obj)
