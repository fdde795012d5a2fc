"""The operation guard: limits, cost and the rate limit, before any resolver runs.

It replaces Strawberry's depth and alias rules, which expand every fragment again on
every spread (exponential in a small document), with the one linear pass in ``cost``.
Only an operation within every limit goes on to graphql-core's standard validation,
whose result is cached per document.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from graphql import (
    ASTValidationRule,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    StringValueNode,
    validate,
)
from graphql.execution import ExecutionResult as GraphQLExecutionResult
from graphql.language import DocumentNode
from graphql.validation import NoSchemaIntrospectionCustomRule
from graphql.validation.rules import overlapping_fields_can_be_merged as overlapping_fields
from strawberry.extensions import SchemaExtension

from db.errors import is_unavailable
from db.rate_limits import Decision, Quota
from graphql_api.auth import authenticate_and_charge, authenticate_caller
from graphql_api.cost import Limits, TooComplex, analyse
from graphql_api.error_handling import quieted
from graphql_api.strawberry_adapter import graphql_schema
from graphql_api.text import invalid_text_reason
from infra.settings import Settings

if TYPE_CHECKING:
    from graphql_api.context import Context

DOCUMENT_CACHE_SIZE = 512
# graphql-core meters the comparisons of its "overlapping fields can be merged" rule and
# aborts validation past this budget (its documented knob, read when validation starts).
# Its default, 500,000, is about two seconds of CPU; real documents spend a few hundred.
overlapping_fields.MAX_COMPLEXITY_BUDGET = 20_000
ABORTED = "Validation aborted."


class SafeStringsRule(ASTValidationRule):
    """PostgreSQL cannot store NUL, and lone surrogates cannot be encoded at all: refuse
    them in the document's literals as the client's mistake, before anything runs."""

    def enter_string_value(self, node: StringValueNode, *_args: Any) -> None:
        reason = invalid_text_reason(node.value)
        if reason is not None:
            self.report_error(
                GraphQLError(
                    f"A string literal contains {reason}",
                    node,
                    extensions={"code": "BAD_USER_INPUT"},
                )
            )


@lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def _validate(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
) -> list[GraphQLError]:
    return validate(schema, document, rules)


class _CostCache:
    """Cost depends on the document, the operation and the variables that are numbers or
    lists (page sizes, id lists): memoised on exactly those, per process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[Any, ...], tuple[DocumentNode, int | TooComplex]] = (
            OrderedDict()
        )

    def cost(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        *,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        limits: Limits,
    ) -> int:
        shape = tuple(
            sorted(
                (name, _shape_of(value))
                for name, value in (variables or {}).items()
                if isinstance(value, int | float | list)
            )
        )
        # The document object stays referenced by its entry, so its id is not reused.
        key = (id(document), operation_name, shape, limits)
        entry = self.entries.get(key)
        if entry is None or entry[0] is not document:
            outcome: int | TooComplex
            try:
                outcome = analyse(
                    schema,
                    document,
                    operation_name=operation_name,
                    variables=variables,
                    limits=limits,
                )
            except TooComplex as error:
                outcome = error
            entry = (document, outcome)
            self.entries[key] = entry
            if len(self.entries) > self.size:
                self.entries.popitem(last=False)
        else:
            self.entries.move_to_end(key)
        if isinstance(entry[1], TooComplex):
            # The cached instance is raised again and again: each raise would otherwise
            # add its frames to the traceback it keeps.
            raise entry[1].with_traceback(None)
        return entry[1]


def _shape_of(value: float | list[Any]) -> float:
    return len(value) if isinstance(value, list) else value


_costs = _CostCache(DOCUMENT_CACHE_SIZE)


class TokenLimit(SchemaExtension):
    """The parser stops at the configured token count: linear, and before any analysis."""

    def on_operation(self) -> Iterator[None]:
        context: Context = self.execution_context.context
        self.execution_context.parse_options["max_tokens"] = (
            context.state.runtime.settings.max_tokens
        )
        yield


class OperationGuard(SchemaExtension):
    """Per operation: checks its shape and cost, charges the rate limit, reports both."""

    def __init__(self) -> None:
        self.cost: int | None = None
        self.decision: Decision | None = None

    @property
    def _context(self) -> Context:
        context: Context = self.execution_context.context
        return context

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        document = execution.graphql_document
        assert document is not None
        settings = self._context.state.runtime.settings
        schema = graphql_schema(execution.schema)
        operations = sum(
            isinstance(definition, OperationDefinitionNode) for definition in document.definitions
        )
        if operations > 1 and not self._context.operation_name_given:
            execution.pre_execution_errors = [
                GraphQLError(
                    "Must provide operation name if query contains multiple operations.",
                    extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
                )
            ]
            yield
            return
        try:
            self.cost = _costs.cost(
                schema,
                document,
                operation_name=execution.operation_name,
                variables=execution.variables,
                limits=Limits(
                    max_cost=settings.max_query_cost,
                    max_depth=settings.max_query_depth,
                    max_aliases=settings.max_aliases,
                ),
            )
        except TooComplex as error:
            execution.pre_execution_errors = [_too_complex(error)]
            yield
            return
        self.cost += document_fee(execution.query or "") - 1
        if self.cost > settings.max_query_cost:
            too_costly = TooComplex("cost", value=self.cost, limit=settings.max_query_cost)
            execution.pre_execution_errors = [_too_complex(too_costly)]
            yield
            return
        rules = (*execution.validation_rules, SafeStringsRule)
        if not settings.introspection_enabled:
            rules = (*rules, NoSchemaIntrospectionCustomRule)
        errors = _validate(schema, document, rules)
        if any(error.message == ABORTED for error in errors):
            errors = [
                GraphQLError(
                    "The document is too costly to validate: fewer repeated fields or "
                    "fragments spread together",
                    extensions={"code": "QUERY_TOO_COMPLEX", "limit": "validation"},
                )
            ]
        execution.pre_execution_errors = errors
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        context = self._context
        try:
            await self._authenticate_and_charge(context)
        except Exception as error:
            if not is_unavailable(error):
                raise
            quieted.warning(
                "authenticate", "cannot authenticate: %s unavailable", type(error).__name__
            )
            # The endpoint refuses the request whole (503), as for any unreachable session.
            context.session_unavailable = True
            self.execution_context.result = GraphQLExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        "The database holding this session is unavailable: try again shortly",
                        extensions={"code": "SERVICE_UNAVAILABLE"},
                    )
                ],
            )
            yield
            return
        if self.decision is not None and not self.decision.allowed:
            retry_after = max(1, math.ceil(self.decision.retry_after))
            self.execution_context.result = GraphQLExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        f"Rate limit exceeded: this operation costs {self.cost} points; "
                        f"retry in {retry_after} s",
                        extensions={"code": "RATE_LIMITED", "retryAfter": retry_after},
                    )
                ],
            )
        yield

    async def _authenticate_and_charge(self, context: Context) -> None:
        """Who is calling, and the operation's charge to its address and viewer: one
        round trip on a cached session (``graphql_api/auth.py``)."""
        state = context.state
        settings = state.runtime.settings
        charge = settings.rate_limits and self.cost is not None
        ip_quota, viewer_quota = request_quotas(settings)
        if not context.authenticated:
            if not charge:
                context.sign_in(await authenticate_caller(state, context.authorization))
                return
            caller, self.decision = await authenticate_and_charge(
                state,
                context.authorization,
                address=(ip_quota, context.client_ip),
                viewer_quota=viewer_quota,
                cost=float(self.cost or 0),
            )
            context.sign_in(caller)
        elif charge:
            charges: list[tuple[Quota, str]] = [(ip_quota, context.client_ip)]
            if context.viewer_id is not None:
                charges.append((viewer_quota, str(context.viewer_id)))
            self.decision = await state.rate_limiter.acquire(charges, cost=self.cost or 0)

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        settings = self._context.state.runtime.settings
        report: dict[str, Any] = {"requested": self.cost, "limit": settings.max_query_cost}
        if self.decision is not None:
            # The tightest of the buckets charged: what the next operations can spend.
            report["budgetLeft"] = math.floor(self.decision.remaining)
        return {"cost": report}


def document_fee(query: str) -> int:
    """What reading a document costs, executed or not: a point, and past the first 2 KB a
    point per started KB, since parsing and validation grow with the text."""
    return 1 + max(0, math.ceil((len(query) - 2048) / 1024))


def _too_complex(error: TooComplex) -> GraphQLError:
    return GraphQLError(
        str(error),
        extensions={
            "code": "QUERY_TOO_COMPLEX",
            "limit": error.kind,
            "value": error.value,
            "maximum": error.limit,
        },
    )


def request_quotas(settings: Settings) -> tuple[Quota, Quota]:
    """The buckets every operation is charged to: its address, and its viewer if any."""
    return (
        Quota(
            name="ip",
            capacity=settings.rate_limit_ip_capacity,
            refill_per_second=settings.rate_limit_ip_per_second,
        ),
        Quota(
            name="viewer",
            capacity=settings.rate_limit_viewer_capacity,
            refill_per_second=settings.rate_limit_viewer_per_second,
        ),
    )
