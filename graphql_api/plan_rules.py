"""The rule a resolver must obey for a compiled plan to call it: of ``info`` it reads
``info.context`` and ``info.selected_fields`` only, the two things a plan's ``PlanInfo``
carries (``graphql_api/compiled.py``). Checked by reading the resolver's source: every use
of its ``info`` parameter is one of those two attributes, or ``info`` handed on to a
function of ours (a module function, a method of the resolver's own class, or any of the
functions of a module-level table it picks one from, as ``node(id)`` picks a type's) that
obeys the same rule for the parameter it lands in, and so on down.

Compilation refuses a field whose resolver breaks the rule (the stock executor then runs
the document), and ``tests/test_compiled_execution.py`` fails for any listed field that
does, so a resolver reaching for ``info.path`` or ``info.variable_values`` is caught in the
test suite rather than by a plan that would hand it an attribute error.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

# What ``PlanInfo`` offers a resolver.
PLAN_INFO_ATTRIBUTES = frozenset({"context", "selected_fields"})

_checked: dict[tuple[Callable[..., Any], str], tuple[str, ...]] = {}


def info_misuses(function: Callable[..., Any], parameter: str) -> tuple[str, ...]:
    """How ``function`` uses its ``parameter`` (an ``info``) beyond what a plan offers;
    empty when it keeps to ``PLAN_INFO_ATTRIBUTES``. Remembered per function."""
    key = (function, parameter)
    found = _checked.get(key)
    if found is None:
        _checked[key] = ()  # a recursive helper is judged by its other uses
        found = _checked[key] = tuple(_misuses(function, parameter))
    return found


def _misuses(function: Callable[..., Any], parameter: str) -> Iterator[str]:
    name = getattr(function, "__qualname__", repr(function))
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        yield f"{name}: its source cannot be read"
        return
    tree = ast.parse(source)
    definition = tree.body[0]
    if not isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
        yield f"{name}: not a function definition"
        return
    parents = {child: node for node in ast.walk(definition) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(definition):
        if not (isinstance(node, ast.Name) and node.id == parameter):
            continue
        if isinstance(node.ctx, ast.Store):
            yield f"{name}: assigns to {parameter}"
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            if parent.attr not in PLAN_INFO_ATTRIBUTES:
                yield f"{name}: reads {parameter}.{parent.attr}"
            continue
        call, passed_as = _call_receiving(node, parent, parents)
        if call is None:
            yield f"{name}: uses {parameter} as a value"
            continue
        callees = _table_entries(call.func, definition, function)
        if callees is None:
            callee, bound = _callee(call.func, function)
            callees = [] if callee is None else [(callee, bound)]
        if not callees:
            yield f"{name}: hands {parameter} to {ast.unparse(call.func)}, which is not checked"
        for callee, bound in callees:
            target = _parameter_name(callee, passed_as, bound=bound)
            if target is None:
                yield f"{name}: hands {parameter} to {callee.__qualname__} as an unknown argument"
                continue
            yield from info_misuses(callee, target)


def _call_receiving(
    node: ast.Name, parent: ast.AST | None, parents: dict[ast.AST, ast.AST]
) -> tuple[ast.Call | None, int | str]:
    """The call ``node`` is an argument of, and at which position or keyword."""
    if isinstance(parent, ast.Call) and node in parent.args:
        return parent, parent.args.index(node)
    if isinstance(parent, ast.keyword) and parent.arg is not None:
        call = parents.get(parent)
        if isinstance(call, ast.Call):
            return call, parent.arg
    return None, 0


def _callee(func: ast.expr, caller: Callable[..., Any]) -> tuple[Callable[..., Any] | None, bool]:
    """A function of ours that ``func`` names from ``caller`` (a global, an attribute of
    one such as ``module.function``, ``self.method`` of the caller's own class, or a class,
    whose ``__init__`` it is), and whether it is called bound (its ``self`` not passed)."""
    namespace: dict[str, Any] = {**vars(builtins), **getattr(caller, "__globals__", {})}
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.insert(0, func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None, False
    bound = func.id == "self"
    if bound:
        owner = caller.__qualname__.rsplit(".", 2)
        found: Any = namespace.get(owner[-2]) if len(owner) >= 2 else None
    else:
        found = namespace.get(func.id)
    for part in parts:
        found = getattr(found, part, None)
    if inspect.isclass(found):
        found, bound = found.__init__, True
    if inspect.ismethod(found):
        found, bound = found.__func__, True
    return (found, bound) if inspect.isfunction(found) else (None, False)


def _table_entries(
    func: ast.expr, definition: ast.AST, caller: Callable[..., Any]
) -> list[tuple[Callable[..., Any], bool]] | None:
    """When ``func`` is a local name picked from a module-level table of functions
    (``resolver = _resolvers.get(type_name)``, or ``_resolvers[type_name]``), every
    function of that table; None when it is not."""
    if not isinstance(func, ast.Name):
        return None
    for node in ast.walk(definition):
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == func.id
        ):
            continue
        picked = node.value
        if isinstance(picked, ast.Call) and isinstance(picked.func, ast.Attribute):
            if picked.func.attr != "get":
                return None
            picked = picked.func.value
        elif isinstance(picked, ast.Subscript):
            picked = picked.value
        else:
            return None
        table = (
            getattr(caller, "__globals__", {}).get(picked.id)
            if isinstance(picked, ast.Name)
            else None
        )
        if not isinstance(table, dict) or not all(
            inspect.isfunction(entry) for entry in table.values()
        ):
            return None
        return [(entry, False) for entry in table.values()]
    return None


def _parameter_name(callee: Callable[..., Any], passed_as: int | str, *, bound: bool) -> str | None:
    parameters = list(inspect.signature(callee).parameters.values())
    if isinstance(passed_as, str):
        return passed_as if any(p.name == passed_as for p in parameters) else None
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if bound:
        positional = positional[1:]
    return positional[passed_as].name if passed_as < len(positional) else None
