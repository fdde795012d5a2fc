"""Compiled execution: a document's hot read shapes turned, once, into a plan that runs
without graphql-core's per-field machinery, in the spirit of graphql-jit.

The stock executor pays, for every field of every object, a resolver wrapper, an
``Info`` object, argument conversion, extension hooks and awaitable checks: for a feed
page of 20 posts that is some 160 fields, more CPU than the page's data. A plan instead
knows at compile time which field of which type each response key is, how to read it
(an attribute, or the field's own resolver called directly) and how to serialise it, and
writes the response dict in one walk.

What it covers (``SHARED_COMPILED_FIELDS`` and each feature's ``compiled_fields``):
the read shapes of the home feed, the profile grid and post detail (``homeFeed``,
``user``, ``viewer``, ``node`` and the post, user, connection, edge and page-info fields
under them), with fragments and aliases, without directives. Everything else, and
anything unexpected while a plan runs (a resolver that raises, a permission refused, a
null where the schema promises a value, a variable that does not coerce), falls back to
the stock executor, which then produces the result and its errors as always: plans only
ever produce a result without errors. Reads have no effect but cache fills, so a plan
abandoned halfway changes nothing.

The envelope is unchanged: parsing, validation, the cost guard and the rate limit run
before (``graphql_api/guard.py``), error typing and ``extensions.cost`` after. Fields run
their own resolvers with the same per-operation loaders, so who may see what is decided
where it always is (``domain/visibility.py``). ``tests/test_compiled_execution.py``
compares both executors byte for byte.

What a plan must know of Strawberry beyond its documented API (the graphql-core schema,
the class and resolver behind each type and field) is read in one module,
``graphql_api/strawberry_adapter.py``, whose test fails when an upgrade changes it; the
rule a listed resolver obeys is checked from its source (``graphql_api/plan_rules.py``).
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)
from graphql.execution import ExecutionResult as GraphQLExecutionResult
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.type.introspection import TypeNameMetaFieldDef
from strawberry.extensions import SchemaExtension
from strawberry.types.nodes import Selection

from db.instrumentation import uncounted
from graphql_api.context import Context
from graphql_api.features import compiled_fields
from graphql_api.loader import pending
from graphql_api.plan_rules import info_misuses
from graphql_api.strawberry_adapter import (
    field_source,
    graphql_schema,
    name_converter,
    origin_class,
    selected_field,
)

if TYPE_CHECKING:
    from strawberry.permission import BasePermission
    from strawberry.schema.name_converter import NameConverter

log = logging.getLogger(__name__)

# The fields a plan may run, by type. Each either is a plain attribute or has a resolver
# that reads only ``info.context`` and ``info.selected_fields`` (the two things a plan's
# ``PlanInfo`` offers; ``graphql_api/plan_rules.py`` checks it).
# The shared types' fields; each feature adds its own (``compiled_fields`` in its
# ``graphql_api/<feature>/feature.py``).
SHARED_COMPILED_FIELDS: Mapping[str, frozenset[str]] = {
    "Query": frozenset({"node"}),
    "PageInfo": frozenset({"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}),
}
PLAN_CACHE_SIZE = 512
# Field nodes a compilation may visit with fragments expanded: far more than any hot
# document has, and a bound on documents built to expand exponentially (a chain of
# fragments each spreading the next twice), which are left to the stock executor.
MAX_COMPILED_NODES = 5_000


class NotCompiled(Exception):
    """This document, or this run of it, is the stock executor's."""


@dataclass(frozen=True, slots=True)
class PlanInfo:
    """What a compiled field's resolver gets for ``info``."""

    context: Context
    selected_fields: list[Selection]


Completer = Callable[[Any, "Run"], Any]


@dataclass(slots=True)
class FieldPlan:
    key: str
    node: FieldNode
    definition: GraphQLField
    # Reading the value: an attribute, a resolver, or a constant (``__typename``).
    attribute: str | None = None
    resolver: Callable[..., Any] | None = None
    info_parameter: str | None = None
    argument_names: dict[str, str] = field(default_factory=dict)
    # The keyword arguments, when the document spells them out without variables
    # (``url(width: 640)``): coerced once, when compiling, instead of for every value.
    fixed_arguments: dict[str, Any] | None = None
    permissions: tuple[type[BasePermission], ...] = ()
    constant: str | None = None
    selected: list[Selection] = field(default_factory=list)
    complete: Completer | None = None
    # Known at compile time, so the walk checks nothing per value: the resolver takes
    # the parent alone and never returns an awaitable; it may return one; the completer
    # returns an awaitable (objects and lists do, leaves never).
    plain: bool = False
    may_await: bool = True
    nested: bool = False


@dataclass(slots=True)
class Run:
    context: Context
    variables: Any


class Plan:
    def __init__(self, root: list[FieldPlan], operation: OperationDefinitionNode) -> None:
        self.root = root
        self.operation = operation

    async def run(
        self, schema: GraphQLSchema, context: Context, variables: dict[str, Any] | None
    ) -> dict[str, Any]:
        coerced = get_variable_values(
            schema, self.operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):  # errors: the stock executor reports them
            raise NotCompiled
        return await _object(None, self.root, Run(context=context, variables=coerced))


async def _object(source: Any, plans: list[FieldPlan], run: Run) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for plan in plans:
        if plan.constant is not None:
            result[plan.key] = plan.constant
            continue
        if plan.attribute is not None:
            value = getattr(source, plan.attribute)
        elif plan.plain:
            # A resolver of the parent alone (``Post.caption``): called as it is.
            value = plan.resolver(source)  # type: ignore[misc]
        else:
            value = await _resolve(source, plan, run)
        assert plan.complete is not None
        completed = plan.complete(value, run)
        # An object completer hands back None, not an awaitable, for a null value.
        result[plan.key] = await completed if plan.nested and completed is not None else completed
    return result


async def _resolve(source: Any, plan: FieldPlan, run: Run) -> Any:
    info = PlanInfo(context=run.context, selected_fields=plan.selected)
    kwargs: dict[str, Any] = {}
    if plan.fixed_arguments is not None:
        kwargs = dict(plan.fixed_arguments)
    elif plan.argument_names:
        given = get_argument_values(plan.definition, plan.node, run.variables)
        kwargs = {plan.argument_names[name]: value for name, value in given.items()}
    for permission in plan.permissions:
        if not permission().has_permission(source, info, **kwargs):  # type: ignore[arg-type]
            raise NotCompiled
    if plan.info_parameter is not None:
        kwargs[plan.info_parameter] = info
    assert plan.resolver is not None
    value = plan.resolver(source, **kwargs)
    # ``pending`` inlined: this runs for every resolver a plan calls.
    return await value if plan.may_await and hasattr(type(value), "__await__") else value


class Compiler:
    def __init__(self, schema: GraphQLSchema, names: NameConverter, document: DocumentNode) -> None:
        self.schema = schema
        self.names = names
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.visited = 0
        self.compiled_fields = compiled_fields(SHARED_COMPILED_FIELDS)

    def visit(self) -> None:
        self.visited += 1
        if self.visited > MAX_COMPILED_NODES:
            raise NotCompiled

    def compile(self, operation: OperationDefinitionNode) -> Plan:
        if operation.operation is not OperationType.QUERY or operation.directives:
            raise NotCompiled
        query = self.schema.query_type
        assert query is not None
        return Plan(self.object_plans(query, [operation.selection_set]), operation)

    def object_plans(
        self, object_type: GraphQLObjectType, selections: Sequence[SelectionSetNode]
    ) -> list[FieldPlan]:
        allowed = self.compiled_fields.get(object_type.name)
        if allowed is None:
            raise NotCompiled
        grouped: OrderedDict[str, list[FieldNode]] = OrderedDict()
        for selection_set in selections:
            for node in self.collect(object_type, selection_set, set()):
                key = node.alias.value if node.alias else node.name.value
                grouped.setdefault(key, []).append(node)
        plans: list[FieldPlan] = []
        for key, nodes in grouped.items():
            name = nodes[0].name.value
            if any(node.name.value != name for node in nodes):
                raise NotCompiled  # validation forbids it; never guess
            if name == "__typename":
                plans.append(
                    FieldPlan(
                        key=key,
                        node=nodes[0],
                        definition=TypeNameMetaFieldDef,
                        constant=object_type.name,
                    )
                )
                continue
            if name not in allowed or name not in object_type.fields:
                raise NotCompiled
            plans.append(self.field_plan(object_type, key, nodes))
        return plans

    def collect(
        self, object_type: GraphQLObjectType, selection_set: SelectionSetNode, seen: set[str]
    ) -> Iterator[FieldNode]:
        for selection in selection_set.selections:
            self.visit()
            if selection.directives:
                raise NotCompiled  # @skip, @include: left to the stock executor
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                if self.applies(selection.type_condition, object_type):
                    yield from self.collect(object_type, selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or fragment.directives:
                    raise NotCompiled
                if name not in seen and self.applies(fragment.type_condition, object_type):
                    yield from self.collect(object_type, fragment.selection_set, seen | {name})

    def applies(self, condition: Any, object_type: GraphQLObjectType) -> bool:
        if condition is None:
            return True
        named = self.schema.get_type(condition.name.value)
        if named is object_type:
            return True
        if isinstance(named, GraphQLInterfaceType):
            return self.schema.is_sub_type(named, object_type)
        return False

    def field_plan(
        self, object_type: GraphQLObjectType, key: str, nodes: list[FieldNode]
    ) -> FieldPlan:
        node = nodes[0]
        definition = object_type.fields[node.name.value]
        source = field_source(object_type, node.name.value, self.names)
        if source is None:
            raise NotCompiled  # a plan passes the parent object as the first argument
        plan = FieldPlan(key=key, node=node, definition=definition)
        subselections = [n.selection_set for n in nodes if n.selection_set is not None]
        plan.complete = self.completer(definition.type, subselections)
        plan.nested = _nested(definition.type)
        plan.selected = [self.selected(node) for node in nodes]
        function = source.function
        if function is None:
            if any(n.arguments for n in nodes) or source.permissions:
                raise NotCompiled
            plan.attribute = source.python_name
            return plan
        if source.info_parameter is not None and info_misuses(function, source.info_parameter):
            # Listed, but it reads more of ``info`` than a plan offers (the suite's
            # test_listed_resolvers_keep_to_what_a_plan_offers names what).
            log.error(
                "%s.%s is listed for compiled plans but %s",
                object_type.name,
                node.name.value,
                "; ".join(info_misuses(function, source.info_parameter)),
            )
            raise NotCompiled
        plan.resolver = function
        plan.info_parameter = source.info_parameter
        plan.argument_names = source.arguments
        plan.permissions = source.permissions
        if len(nodes) > 1 and any(n.arguments for n in nodes):
            raise NotCompiled
        if plan.argument_names and not _uses_variables(node):
            given = get_argument_values(definition, node, None)
            plan.fixed_arguments = {
                plan.argument_names[name]: value for name, value in given.items()
            }
        returns = str(inspect.get_annotations(function).get("return", "Awaitable"))
        # A resolver that may load (it reaches the loaders through ``info``) answers with
        # a value or an awaitable (``graphql_api/loader.py: Loaded``): checked per value.
        plan.may_await = (
            inspect.iscoroutinefunction(function)
            or plan.info_parameter is not None
            or "Awaitable" in returns
            or "Loaded" in returns
        )
        plan.plain = not (
            plan.may_await or plan.info_parameter or plan.argument_names or plan.permissions
        )
        return plan

    def selected(self, node: FieldNode) -> Selection:
        """The field as Strawberry's ``info.selected_fields`` shows it, fragments inlined
        (resolvers here only read names: ``graphql_api/posts/types.py``)."""

        def children(selection_set: SelectionSetNode | None) -> list[Selection]:
            if selection_set is None:
                return []
            found: list[Selection] = []
            for selection in selection_set.selections:
                self.visit()
                if isinstance(selection, FieldNode):
                    found.append(self.selected(selection))
                elif isinstance(selection, InlineFragmentNode):
                    found += children(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    fragment = self.fragments.get(selection.name.value)
                    if fragment is not None:
                        found += children(fragment.selection_set)
            return found

        return selected_field(
            name=node.name.value,
            alias=node.alias.value if node.alias else None,
            selections=children(node.selection_set),
        )

    def completer(
        self, output_type: GraphQLOutputType, selections: list[SelectionSetNode]
    ) -> Completer:
        if isinstance(output_type, GraphQLNonNull):
            inner = self.completer(output_type.of_type, selections)

            def non_null(value: Any, run: Run) -> Any:
                if value is None:
                    raise NotCompiled  # the stock executor reports the error
                return inner(value, run)

            return non_null
        if isinstance(output_type, GraphQLList):
            item = self.completer(output_type.of_type, selections)

            async def listed(value: Any, run: Run) -> Any:
                if value is None:
                    return None
                completed = []
                for entry in value:
                    done = item(entry, run)
                    completed.append(await done if pending(done) else done)
                return completed

            return listed
        if isinstance(output_type, GraphQLScalarType | GraphQLEnumType):
            # Both are leaves, completed as graphql-core completes them: serialize().
            serialize = output_type.serialize

            def scalar(value: Any, run: Run) -> Any:
                return None if value is None else serialize(value)

            return scalar
        if isinstance(output_type, GraphQLObjectType):
            plans = self.object_plans(output_type, selections)

            def object_value(value: Any, run: Run) -> Any:
                return None if value is None else _object(value, plans, run)

            return object_value
        if isinstance(output_type, GraphQLInterfaceType):
            by_class: dict[type[Any], list[FieldPlan]] = {}
            for possible in self.schema.get_possible_types(output_type):
                origin = origin_class(possible)
                try:
                    plans = self.object_plans(possible, selections)
                except NotCompiled:
                    continue  # values of this type fall back when they occur
                if origin is not None:
                    by_class[origin] = plans

            def abstract(value: Any, run: Run) -> Any:
                if value is None:
                    return None
                plans = by_class.get(type(value))
                if plans is None:
                    raise NotCompiled
                return _object(value, plans, run)

            return abstract
        raise NotCompiled  # unions: the stock executor's


def _uses_variables(node: FieldNode) -> bool:
    def walk(value: Any) -> bool:
        if isinstance(value, VariableNode):
            return True
        if isinstance(value, ListValueNode):
            return any(walk(item) for item in value.values)
        if isinstance(value, ObjectValueNode):
            return any(walk(entry.value) for entry in value.fields)
        return False

    return any(walk(argument.value) for argument in node.arguments or ())


def _nested(output_type: GraphQLOutputType) -> bool:
    """Whether a field's completer is a coroutine: lists and objects are, leaves (scalars
    and enums) not."""
    while isinstance(output_type, GraphQLNonNull):
        output_type = output_type.of_type
    return not isinstance(output_type, GraphQLScalarType | GraphQLEnumType)


class _PlanCache:
    """Plans (or "not compilable") per parsed document and operation name; parsed
    documents are cached per text (``ParserCache``), so a hot document compiles once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[int, str | None], tuple[DocumentNode, Plan | None]] = (
            OrderedDict()
        )

    def plan(
        self,
        schema: GraphQLSchema,
        names: NameConverter,
        document: DocumentNode,
        operation_name: str | None,
    ) -> Plan | None:
        key = (id(document), operation_name)
        entry = self.entries.get(key)
        if entry is not None and entry[0] is document:
            self.entries.move_to_end(key)
            return entry[1]
        plan = _compile(schema, names, document, operation_name)
        self.entries[key] = (document, plan)
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return plan


def _compile(
    schema: GraphQLSchema, names: NameConverter, document: DocumentNode, operation_name: str | None
) -> Plan | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return None
    try:
        return Compiler(schema, names, document).compile(operations[0])
    except NotCompiled:
        return None
    except Exception:
        # Our bug, not the client's: logged, and the stock executor answers.
        log.exception("compiling an operation failed; the stock executor runs it")
        return None


_plans = _PlanCache(PLAN_CACHE_SIZE)


@dataclass
class CompiledRuns:
    """How often plans answered, and how often they handed over to the stock executor."""

    answered: int = 0
    fell_back: int = 0
    # ``verify`` mode: every disagreement with the stock executor (none, ever).
    mismatches: list[str] = field(default_factory=list)


runs = CompiledRuns()


class CompiledExecution(SchemaExtension):
    """Answers a compiled document with its plan; after the guard, so an operation it
    refused (rate limit) is never run."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context: Context = execution.context
        mode = context.state.runtime.settings.compiled_execution
        if mode == "off" or execution.result is not None or execution.graphql_document is None:
            yield
            return
        schema = graphql_schema(execution.schema)
        plan = _plans.plan(
            schema,
            name_converter(execution.schema),
            execution.graphql_document,
            execution.operation_name,
        )
        if plan is None:
            yield
            return
        if mode == "verify":
            yield
            await _verify(plan, schema, context, execution.variables, execution.result)
            return
        try:
            data = await plan.run(schema, context, execution.variables)
        except Exception:
            # NotCompiled, or a resolver raised: the stock executor runs the same
            # resolvers and reports what they raise, typed as always.
            runs.fell_back += 1
        else:
            runs.answered += 1
            execution.result = GraphQLExecutionResult(data=data)
        yield


async def _verify(
    plan: Plan,
    schema: GraphQLSchema,
    context: Context,
    variables: dict[str, Any] | None,
    stock: Any,
) -> None:
    """``verify`` mode (the test suite's): the stock executor answered; the plan runs after
    it on fresh loaders, its reads left out of the work counters, and must give the same
    bytes, or must have handed over where the stock result has errors."""
    with uncounted():
        try:
            data = await plan.run(schema, context.fresh_copy(), variables)
        except Exception:
            runs.fell_back += 1
            return
    runs.answered += 1
    stock_data = getattr(stock, "data", None)
    stock_errors = getattr(stock, "errors", None)
    if stock_errors or orjson.dumps(data) != orjson.dumps(stock_data):
        runs.mismatches.append(
            f"plan: {orjson.dumps(data)[:2000]!r}; stock: {orjson.dumps(stock_data)[:2000]!r}, "
            f"errors {stock_errors!r}"
        )
        log.error("a compiled plan disagreed with the stock executor: %s", runs.mismatches[-1])
