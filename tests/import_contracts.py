"""Import contracts about features, for import-linter (``[tool.importlinter]``).

import-linter's own contracts name modules; these find the features themselves (every
subpackage of ``domain``, ``db`` and ``graphql_api``), so a new feature is held to them
with no contract added for it:

- ``feature_data``: a feature's domain uses its own repository only, never another
  feature's; the shared domain modules (``domain/*.py``) use none, but for the pairs
  listed in ``shared_repositories``;
- ``feature_free``: the shared modules listed (the registry's readers: the schema, the
  context, the cost model, ``AppState``...) import no module of any feature.
"""

from __future__ import annotations

from typing import Any

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


def _features(graph: ImportGraph, parent: str) -> set[str]:
    """The subpackages of ``parent`` (a feature is a package; a module is shared)."""
    return {child for child in graph.find_children(parent) if graph.find_children(child)}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _importers_of(graph: ImportGraph, modules: set[str]) -> list[tuple[str, str, int, str]]:
    found: list[tuple[str, str, int, str]] = []
    for imported in sorted(modules):
        for importer in sorted(graph.find_modules_that_directly_import(imported)):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                found.append((importer, imported, detail["line_number"], detail["line_contents"]))
    return found


def _strings(value: object) -> list[str]:
    """A list option's values (import-linter sets each field's value on the contract)."""
    return [str(item) for item in value] if isinstance(value, list | tuple | set) else []


def _render(check: ContractCheck) -> None:
    for importer, imported, line, text in check.metadata["illegal"]:
        output.print_error(f"{importer} -> {imported} (l.{line}: {text.strip()})")
        output.new_line()


class FeatureDataContract(Contract):
    domain = fields.StringField()
    db = fields.StringField()
    shared_repositories = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        domain, db = str(getattr(self, "domain", "")), str(getattr(self, "db", ""))
        allowed_pairs = {
            tuple(part.strip() for part in pair.split("->"))
            for pair in _strings(getattr(self, "shared_repositories", None))
        }
        features = _features(graph, domain)
        repositories = {
            f"{package}.repository"
            for package in _features(graph, db)
            if graph.find_matching_modules(f"{package}.repository")
        }
        illegal = []
        for importer, imported, line, text in _importers_of(graph, repositories):
            if not _within(importer, domain):
                continue
            owner = imported.rsplit(".", 2)[-2]
            home = next((f for f in features if _within(importer, f)), None)
            if home is not None and home.rsplit(".", 1)[-1] == owner:
                continue  # its own data
            if home is None and (importer, imported) in allowed_pairs:
                continue
            illegal.append((importer, imported, line, text))
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        _render(check)


class FeatureFreeContract(Contract):
    shared_modules = fields.ListField(subfield=fields.StringField())
    feature_parents = fields.ListField(subfield=fields.StringField())
    not_features = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        shared = _strings(getattr(self, "shared_modules", None))
        parents = _strings(getattr(self, "feature_parents", None))
        excluded = set(_strings(getattr(self, "not_features", None)))
        feature_modules: set[str] = set()
        for parent in parents:
            for feature in _features(graph, parent) - excluded:
                feature_modules |= {feature, *graph.find_descendants(feature)}
        illegal: list[Any] = []
        for module in shared:
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                if imported in feature_modules:
                    for detail in graph.get_import_details(importer=module, imported=imported):
                        illegal.append(
                            (module, imported, detail["line_number"], detail["line_contents"])
                        )
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        _render(check)
