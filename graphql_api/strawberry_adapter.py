"""Everything compiled execution (``graphql_api/compiled.py``) reads of Strawberry beyond
its documented API, in one place.

A plan needs what Strawberry keeps to itself: the graphql-core schema it built, which
Python class and resolver stand behind each GraphQL type and field, and the shape of what
``info.selected_fields`` hands a resolver. Each function below names what it relies on;
``tests/test_compiled_execution.py`` checks each against the real schema, so an upgrade of
Strawberry that moves one of them fails there, not in production (where a plan that
cannot be built is left to the stock executor).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import GraphQLObjectType, GraphQLSchema
from strawberry.types.nodes import SelectedField, Selection

if TYPE_CHECKING:
    from strawberry.permission import BasePermission
    from strawberry.schema.base import BaseSchema
    from strawberry.schema.name_converter import NameConverter
    from strawberry.types.base import StrawberryObjectDefinition

# Where Strawberry keeps, in each graphql-core type it builds, the definition it built it
# from (``strawberry/schema/schema_converter.py``).
DEFINITION_KEY = "strawberry-definition"


def graphql_schema(schema: BaseSchema) -> GraphQLSchema:
    """The graphql-core schema Strawberry built (``Schema._schema``, private)."""
    built = getattr(schema, "_schema", None)
    if not isinstance(built, GraphQLSchema):
        raise TypeError("Strawberry no longer keeps its graphql-core schema in _schema")
    return built


def name_converter(schema: BaseSchema) -> NameConverter:
    """How Python names become GraphQL names (``schema.config.name_converter``)."""
    converter: NameConverter = schema.config.name_converter
    return converter


def _definition(graphql_type: GraphQLObjectType) -> StrawberryObjectDefinition | None:
    definition: StrawberryObjectDefinition | None = (graphql_type.extensions or {}).get(
        DEFINITION_KEY
    )
    return definition


def origin_class(graphql_type: GraphQLObjectType) -> type[Any] | None:
    """The Python class a GraphQL object type was made from (for a generic, such as
    ``Connection[Post]``, the class Strawberry made for it)."""
    definition = _definition(graphql_type)
    return None if definition is None else definition.origin


@dataclass(frozen=True, slots=True)
class FieldSource:
    """How a GraphQL field reads its value: an attribute, or a resolver function called
    with the parent as its first argument."""

    python_name: str
    # None: the field is the attribute ``python_name``.
    function: Callable[..., Any] | None
    # The resolver's parameter that receives ``info`` (None: it takes none).
    info_parameter: str | None
    # GraphQL argument name to Python parameter name.
    arguments: dict[str, str]
    permissions: tuple[type[BasePermission], ...]


def field_source(
    graphql_type: GraphQLObjectType, field_name: str, names: NameConverter
) -> FieldSource | None:
    """What stands behind ``graphql_type.field_name``; None when it is not a method or an
    attribute of the type's class (a plan cannot call it as the stock executor would)."""
    definition = _definition(graphql_type)
    if definition is None:
        return None
    for candidate in definition.fields:
        if names.from_field(candidate) != field_name:
            continue
        arguments = {names.from_argument(arg): arg.python_name for arg in candidate.arguments}
        permissions = tuple(candidate.permission_classes)
        resolver = candidate.base_resolver
        if resolver is None:
            return FieldSource(candidate.python_name, None, None, arguments, permissions)
        function = resolver.wrapped_func
        if resolver.self_parameter is None or not inspect.isfunction(function):
            return None
        info = resolver.info_parameter
        return FieldSource(
            python_name=candidate.python_name,
            function=function,
            info_parameter=info.name if info is not None else None,
            arguments=arguments,
            permissions=permissions,
        )
    return None


def selected_field(*, name: str, alias: str | None, selections: Sequence[Selection]) -> Selection:
    """One entry of ``info.selected_fields`` as Strawberry makes it for a field without
    arguments or directives (``strawberry.types.nodes.SelectedField``)."""
    return SelectedField(
        name=name, directives={}, arguments={}, selections=list(selections), alias=alias
    )
