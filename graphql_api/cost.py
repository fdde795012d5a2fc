"""Query cost, depth and alias analysis in one pass, linear in the document.

The cost model (documented in SECURITY.md): **every object in the response costs one
point**, scalars cost nothing. A list of objects costs its largest possible length times
the cost of one item: the ``edges``/``nodes`` of a connection take the connection's page
size (``first``, or the argument's default), ``nodes(ids:)`` the number of ids, and
other lists their declared bound. So ``homeFeed(first: 20) { edges { node { author {
username } } } }`` costs 1 + 20 * 3 = 61, and four nested ``followers(first: 100)``
cost about 2·10⁸. It is Shopify's cost points with GitHub's multiplication down the tree.

Why one pass with memoised fragments: validation rules that expand a fragment again on
every spread are exponential in a small document (a chain of fragments, each spreading
the next twice). Here each fragment is summarised once per page-size context and the
summary is multiplied in arithmetically, so the work is O(document size * distinct page
sizes) whatever the spreads multiply out to. Numbers are capped, not left to grow.

Introspection is bounded by the schema, not by arguments: its lists are charged a flat
``INTROSPECTION_COST`` and may nest at most ``MAX_INTROSPECTION_LIST_NESTING`` deep
(``fields { type { fields { type ...`` repeats are what make it explode).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
    value_from_ast_untyped,
)
from graphql.language import DocumentNode

from graphql_api.features import list_bounds
from graphql_api.relay import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

MUTATION_COST = 10
INTROSPECTION_COST = 50
MAX_INTROSPECTION_LIST_NESTING = 3
_CAP = 10**15
# graphql-core's "overlapping fields can be merged" rule compares every pair of fields that
# share a response name, fragments' fields included, recursing into their sub-selections:
# quadratic at every level. These bounds, with the comparison budget set in guard.py,
# keep its worst case in tens of milliseconds (docs/benchmarks.md) where it took seconds;
# real documents are far inside them.
MAX_FRAGMENTS = 64
MAX_SPREADS = 128
MAX_REPEATED_RESPONSE_NAME = 16


class TooComplex(Exception):
    """The operation passes a limit: ``kind`` is cost, depth, aliases or introspection."""

    def __init__(self, kind: str, *, value: int, limit: int) -> None:
        shown = f"more than {limit:,}" if value >= _CAP else f"{value:,}"
        messages = {
            "cost": f"Query cost {shown} exceeds the maximum of {limit:,}: ask for smaller "
            "pages or fewer nested lists",
            "depth": f"Query exceeds maximum operation depth of {limit} ({shown})",
            "aliases": f"Query has {shown} aliases, more than the maximum of {limit}",
            "introspection": f"Introspection nests {shown} lists, more than {limit}",
            "cycle": "A fragment spreads itself",
            "fragments": f"The document defines {shown} fragments, more than {limit}",
            "spreads": f"The document has {shown} fragment spreads, more than {limit}",
            "repeats": f"One selection repeats a response name {shown} times, more than {limit}",
        }
        super().__init__(messages[kind])
        self.kind = kind
        self.value = min(value, _CAP)
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Limits:
    max_cost: int
    max_depth: int
    max_aliases: int


@dataclass(frozen=True, slots=True)
class Summary:
    cost: int = 0
    depth: int = 0
    aliases: int = 0
    introspection_lists: int = 0


_EMPTY = Summary()


def _add(total: Summary, part: Summary, times: int = 1) -> Summary:
    return Summary(
        cost=min(total.cost + part.cost * times, _CAP),
        depth=max(total.depth, part.depth),
        aliases=min(total.aliases + part.aliases * times, _CAP),
        introspection_lists=max(total.introspection_lists, part.introspection_lists),
    )


class _Analysis:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.memo: dict[tuple[str, int | None, bool], Summary] = {}
        self.in_progress: set[str] = set()
        self.list_bounds = list_bounds()

    def int_argument(self, node: ValueNode | None) -> int | None:
        """The page size to charge; None where the argument's default applies (absent or
        null). A value that will not coerce to an Int is charged as the maximum: it fails
        coercion anyway, and guessing low is how a cost check gets bypassed."""
        if isinstance(node, IntValueNode):
            return int(node.value) if len(node.value) < 12 else MAX_PAGE_SIZE
        if isinstance(node, VariableNode):
            value = self.variables.get(node.name.value)
            if value is None:
                return None
            if isinstance(value, bool):
                return MAX_PAGE_SIZE
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                # graphql-core coerces 100.0 to the Int 100.
                return int(value) if abs(value) < 1e12 else MAX_PAGE_SIZE
            return MAX_PAGE_SIZE
        if node is None or isinstance(node, NullValueNode):
            return None
        return MAX_PAGE_SIZE

    def page_size(self, field_node: FieldNode, definition: GraphQLField) -> int:
        for argument in field_node.arguments or ():
            # A connection pages forward with first, or back with last, never both.
            if argument.name.value not in ("first", "last"):
                continue
            value = argument.value
            if isinstance(value, VariableNode) and value.name.value not in self.variables:
                break  # a variable left out, with no default: as if the argument were absent
            size = self.int_argument(value)
            # An explicit null reaches the resolver, whose default is DEFAULT_PAGE_SIZE.
            return DEFAULT_PAGE_SIZE if size is None else max(0, min(size, MAX_PAGE_SIZE))
        spec = definition.args.get("first")
        default = getattr(spec, "default_value", None) if spec is not None else None
        return default if isinstance(default, int) else DEFAULT_PAGE_SIZE

    def list_length(
        self, parent: GraphQLNamedType, field_node: FieldNode, page_size: int | None
    ) -> int:
        name = field_node.name.value
        if page_size is not None and name in ("edges", "nodes"):
            return page_size
        if name == "nodes" and parent is self.schema.query_type:
            for argument in field_node.arguments or ():
                if argument.name.value == "ids":
                    if isinstance(argument.value, ListValueNode):
                        return len(argument.value.values)
                    if isinstance(argument.value, VariableNode):
                        ids = self.variables.get(argument.value.name.value)
                        return len(ids) if isinstance(ids, list) else MAX_PAGE_SIZE
        # Lists whose length a rule bounds (each feature declares its own); anything
        # else is charged as a full page, the most any list in this API returns.
        return self.list_bounds.get((parent.name, name), MAX_PAGE_SIZE)

    def selection_set(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType,
        page_size: int | None,
        in_introspection: bool,
    ) -> Summary:
        total = _EMPTY
        spread: set[str] = set()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total = _add(total, self.field(selection, parent, page_size, in_introspection))
            elif isinstance(selection, InlineFragmentNode):
                condition = (
                    self.schema.get_type(selection.type_condition.name.value)
                    if selection.type_condition
                    else parent
                )
                part = self.selection_set(
                    selection.selection_set, condition or parent, page_size, in_introspection
                )
                total = _add(total, part)
            elif isinstance(selection, FragmentSpreadNode):
                # The executor merges repeated spreads of one fragment: so do we.
                name = selection.name.value
                if name not in spread:
                    spread.add(name)
                    total = _add(total, self.fragment(name, page_size, in_introspection))
        return total

    def fragment(self, name: str, page_size: int | None, in_introspection: bool) -> Summary:
        key = (name, page_size, in_introspection)
        cached = self.memo.get(key)
        if cached is not None:
            return cached
        definition = self.fragments.get(name)
        if definition is None:
            return _EMPTY  # validation reports the unknown fragment
        if name in self.in_progress:
            raise TooComplex("cycle", value=0, limit=0)
        condition = self.schema.get_type(definition.type_condition.name.value)
        if condition is None:
            return _EMPTY
        self.in_progress.add(name)
        try:
            summary = self.selection_set(
                definition.selection_set, condition, page_size, in_introspection
            )
        finally:
            self.in_progress.discard(name)
        self.memo[key] = summary
        return summary

    def field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType,
        page_size: int | None,
        in_introspection: bool,
    ) -> Summary:
        aliases = 1 if node.alias is not None else 0
        name = node.name.value
        if name == "__typename":
            return Summary(aliases=aliases)
        definition = self._definition(parent, name)
        if definition is None or node.selection_set is None:
            # Leaves add no depth: depth counts nested selection sets, as the
            # graphql-depth-limit rule this replaces did.
            return Summary(aliases=aliases)
        child_type = get_named_type(definition.type)
        introspective = in_introspection or name.startswith("__")
        child_page = (
            self.page_size(node, definition)
            if child_type.name.endswith("Connection") and not introspective
            else None
        )
        child = self.selection_set(node.selection_set, child_type, child_page, introspective)
        is_list = is_list_type(get_nullable_type(definition.type))
        if introspective:
            nesting = child.introspection_lists + (1 if is_list else 0)
            cost = INTROSPECTION_COST if name.startswith("__") else 0
            # Introspection's depth is the schema's, bounded by the nesting rule above.
            return Summary(
                cost=cost,
                aliases=child.aliases + aliases,
                introspection_lists=nesting,
            )
        if not is_list:
            times = 1
        elif "first" in definition.args:
            # A plain list that takes ``first`` (a story tray item's stories) is that long.
            times = self.page_size(node, definition)
        else:
            times = self.list_length(parent, node, page_size)
        return Summary(
            cost=min(times * (1 + child.cost), _CAP),
            depth=child.depth + 1,
            aliases=min(aliases + times * child.aliases, _CAP),
        )

    def _definition(self, parent: GraphQLNamedType, name: str) -> GraphQLField | None:
        if name == "__schema" or name == "__type":
            return SchemaMetaFieldDef if name == "__schema" else TypeMetaFieldDef
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            field: GraphQLField | None = parent.fields.get(name)
            return field
        return None


def select_operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | None:
    operations = [
        definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    return next(
        (op for op in operations if op.name is not None and op.name.value == operation_name),
        None,
    )


def check_shape(document: DocumentNode) -> None:
    """Bounds that keep standard validation cheap, in one walk of the document.

    The response names of a selection set are counted with the fields its fragments bring
    in (each fragment's own counts are made once and reused), because that merged set is
    what the overlap rule compares pair by pair."""
    definitions: dict[str, FragmentDefinitionNode] = {}
    operations: list[SelectionSetNode] = []
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            definitions[definition.name.value] = definition
        elif isinstance(definition, OperationDefinitionNode):
            operations.append(definition.selection_set)
    if len(definitions) > MAX_FRAGMENTS:
        raise TooComplex("fragments", value=len(definitions), limit=MAX_FRAGMENTS)
    spreads = 0
    merged: dict[str, dict[str, int]] = {}
    in_progress: set[str] = set()

    def names_of(selection_set: SelectionSetNode) -> dict[str, int]:
        """Counts of the merged response names; every sub-selection is checked too."""
        nonlocal spreads
        names: dict[str, int] = {}
        spread: set[str] = set()
        # Inline fragments merge into the selection set they sit in: flatten them.
        flat = list(selection_set.selections)
        while flat:
            selection = flat.pop()
            if isinstance(selection, FieldNode):
                name = (selection.alias or selection.name).value
                names[name] = names.get(name, 0) + 1
                if selection.selection_set is not None:
                    names_of(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                flat.extend(selection.selection_set.selections)
            elif isinstance(selection, FragmentSpreadNode):
                spreads += 1
                if spreads > MAX_SPREADS:
                    raise TooComplex("spreads", value=spreads, limit=MAX_SPREADS)
                spread.add(selection.name.value)
        for name in spread:
            for field, count in fragment_names(name).items():
                names[field] = names.get(field, 0) + count
        most = max(names.values(), default=0)
        if most > MAX_REPEATED_RESPONSE_NAME:
            raise TooComplex("repeats", value=most, limit=MAX_REPEATED_RESPONSE_NAME)
        return names

    def fragment_names(name: str) -> dict[str, int]:
        if name in merged:
            return merged[name]
        definition = definitions.get(name)
        if definition is None or name in in_progress:
            return {}  # validation reports unknown and cyclic fragments
        in_progress.add(name)
        merged[name] = names_of(definition.selection_set)
        in_progress.discard(name)
        return merged[name]

    for name in definitions:
        fragment_names(name)
    for selection_set in operations:
        names_of(selection_set)


def analyse(
    schema: GraphQLSchema,
    document: DocumentNode,
    *,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    limits: Limits,
) -> int:
    """The operation's cost; raises ``TooComplex`` past a limit. An operation that
    cannot be selected costs 0: execution reports that error itself."""
    check_shape(document)
    operation = select_operation(document, operation_name)
    if operation is None:
        return 0
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    if root is None:
        return 0
    # A variable the request leaves out takes its declared default: charge that.
    effective: dict[str, Any] = {
        definition.variable.name.value: value_from_ast_untyped(definition.default_value)
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }
    effective.update(variables or {})
    analysis = _Analysis(schema, fragments, effective)
    summary = analysis.selection_set(operation.selection_set, root, None, False)
    if summary.depth > limits.max_depth:
        raise TooComplex("depth", value=summary.depth, limit=limits.max_depth)
    if summary.aliases > limits.max_aliases:
        raise TooComplex("aliases", value=summary.aliases, limit=limits.max_aliases)
    if summary.introspection_lists > MAX_INTROSPECTION_LIST_NESTING:
        raise TooComplex(
            "introspection",
            value=summary.introspection_lists,
            limit=MAX_INTROSPECTION_LIST_NESTING,
        )
    cost = summary.cost
    if operation.operation is OperationType.MUTATION:
        cost += MUTATION_COST * len(operation.selection_set.selections)
    cost = max(cost, 1)
    if cost > limits.max_cost:
        raise TooComplex("cost", value=cost, limit=limits.max_cost)
    return cost
