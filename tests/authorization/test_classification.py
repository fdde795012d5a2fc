"""The authorization audit's completeness: every field of the schema classified exactly
once, across the ``AUDIT`` of every test module of this package, each naming a probe that
is a test of the package."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

from graphql import GraphQLInterfaceType, GraphQLObjectType

from graphql_api.schema import schema
from graphql_api.strawberry_adapter import graphql_schema
from tests.authorization.audit import Classified

PACKAGE = __name__.rpartition(".")[0]


def audit_modules() -> dict[str, ModuleType]:
    """Every ``test_*`` module of this package, by name."""
    names = [
        info.name
        for info in pkgutil.iter_modules([str(Path(__file__).parent)])
        if info.name.startswith("test_")
    ]
    return {name: importlib.import_module(f"{PACKAGE}.{name}") for name in sorted(names)}


def schema_fields() -> set[str]:
    """Every field of every object type and interface of the schema, as ``Type.field``."""
    found: set[str] = set()
    for name, graphql_type in graphql_schema(schema).type_map.items():
        if name.startswith("__"):
            continue
        if isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType):
            found.update(f"{name}.{field_name}" for field_name in graphql_type.fields)
    return found


def merged_audit(modules: dict[str, ModuleType]) -> dict[str, Classified]:
    """Every module's ``AUDIT`` in one table, by field; a field two rows classify (in one
    module or in two) fails, naming the modules."""
    merged: dict[str, Classified] = {}
    where: dict[str, list[str]] = {}
    for module_name, module in modules.items():
        rows: list[Classified] = getattr(module, "AUDIT", [])
        for row in rows:
            merged[row.name] = row
            where.setdefault(row.name, []).append(module_name)
    twice = {name: found_in for name, found_in in where.items() if len(found_in) > 1}
    assert not twice, f"Fields classified more than once, with where: {twice}"
    return merged


def test_every_field_is_classified() -> None:
    modules = audit_modules()
    audit = merged_audit(modules)
    fields = schema_fields()
    missing = sorted(fields - set(audit))
    assert not missing, (
        "These fields are not in the authorization audit. Classify each in the AUDIT of "
        "its feature's module (tests/authorization/test_<feature>.py) as PUBLIC, "
        "PRIVATE_TO_OWNER or GUARDED_BY_PARENT, with the probe that shows it leaks nothing "
        f"(and extend that probe if it does not reach the field yet): {missing}"
    )
    stale = sorted(set(audit) - fields)
    assert not stale, f"AUDIT classifies fields the schema no longer has: {stale}"
    tests = {
        name
        for module in modules.values()
        for name, value in vars(module).items()
        if name.startswith("test_") and callable(value)
    }
    probes = {row.probe for row in audit.values()}
    unknown = sorted(probes - tests)
    assert not unknown, f"AUDIT names probes that are not tests of this package: {unknown}"
