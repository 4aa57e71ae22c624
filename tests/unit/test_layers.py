"""The layers, read from the code: packages import one way, and nothing imports the top layer.

The top layer is what a request or a worker enters through: the views, the tasks, the app
factory, the CLI and the Celery wiring. It may call any package's services. Below it, the
packages of ``distributor`` (and its infrastructure modules, each a node of its own) must not
import each other in a circle, and no module imports a view or a task: services enqueue tasks
by name (``distributor.tasks_api``) and tell other packages what happened through signals
(``distributor.signals``). Every import counts, at module level or inside a function.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import distributor

SOURCE = Path(distributor.__file__).resolve().parent
TOP_MODULES = {"distributor", "distributor.app", "distributor.cli", "distributor.celery_app"}
TOP_SUFFIXES = ("views", "tasks")

Edge = tuple[str, str]  # (importing module, imported module)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package except the migrations (Alembic's scripts)."""
    return {
        _module_name(path): path
        for path in sorted(SOURCE.rglob("*.py"))
        if "migrations" not in path.relative_to(SOURCE).parts
    }


def is_top(module: str) -> bool:
    return module in TOP_MODULES or module.rsplit(".", 1)[-1].endswith(TOP_SUFFIXES)


def package_of(module: str) -> str:
    """``distributor.audience.merge`` -> ``distributor.audience``; top-level modules stand alone."""
    return ".".join(module.split(".")[:2])


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ours that ``module`` imports anywhere in its body."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            # ``from distributor.audience import merge`` imports the module ``merge``.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def import_edges() -> list[Edge]:
    known = modules()
    names = set(known)
    return sorted(
        (module, target)
        for module, path in known.items()
        for target in imports_of(module, path, names)
        if target != module
    )


def package_graph(edges: list[Edge]) -> dict[str, dict[str, list[Edge]]]:
    """Package -> package it imports -> the module imports that make the arrow (below the top)."""
    graph: dict[str, dict[str, list[Edge]]] = defaultdict(lambda: defaultdict(list))
    for module, target in edges:
        if is_top(module) or is_top(target):
            continue
        source_package, target_package = package_of(module), package_of(target)
        if source_package != target_package:
            graph[source_package][target_package].append((module, target))
    return graph


def circles(graph: dict[str, dict[str, list[Edge]]]) -> list[list[str]]:
    """The strongly connected groups of more than one package (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for following in graph.get(node, {}):
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in on_stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    nodes = set(graph) | {target for targets in graph.values() for target in targets}
    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return groups


def test_the_reader_sees_the_imports_it_must_see() -> None:
    # A guard on the guard: if the parser stopped seeing function-level or relative imports,
    # the tests below would pass on any code.
    edges = set(import_edges())
    assert ("distributor.app", "distributor.celery_app") in edges
    assert ("distributor.delivery.tasks", "distributor.delivery.sender") in edges
    assert ("distributor.demo", "distributor.releases.demo") in edges  # inside a function
    assert is_top("distributor.audience.public_views") and is_top("distributor.delivery.mail_tasks")
    assert not is_top("distributor.tasks_api")


def test_packages_below_the_views_and_tasks_import_each_other_without_a_circle() -> None:
    graph = package_graph(import_edges())
    found = circles(graph)
    described = [
        f"{' <-> '.join(group)}: "
        + "; ".join(
            f"{module} -> {target}"
            for source in group
            for destination, made_by in sorted(graph[source].items())
            if destination in group
            for module, target in made_by
        )
        for group in found
    ]
    assert found == [], "packages in a circle:\n" + "\n".join(described)


def test_nothing_below_the_top_imports_a_view_or_a_task() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, target in import_edges()
        if is_top(target) and not is_top(module)
    ]
    assert wrong == [], "enqueue by task name (distributor.tasks_api); views are the top:\n" + (
        "\n".join(wrong)
    )
