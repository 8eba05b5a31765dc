"""The house drawn from imports (issue 11): `core` <- `flows` <- `bot`, no cycle inside `core`, small rooms.

The graph is read from the source (AST), not from `sys.modules`: every `import` counts wherever it
stands, inside a function (a lazy import) or under `if TYPE_CHECKING:` alike, so a cycle cannot hide
behind a function-level import. `from core import romiplostim` is an edge to `core.romiplostim`
(a submodule), `from core.models import Drug` an edge to `core.models`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "flows", "bot")
# ~400 lines a file (issue 11): a file past it is doing more than one job; split it by job.
MAX_LINES = 400


def module_name(path: Path, root: Path) -> str:
    """core/models.py -> core.models; core/__init__.py -> core."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(path, root)] = path
    return found


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module of a `from ... import`, relative ones included."""
    if not node.level:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """Every module `name` imports, anywhere in the file (functions and TYPE_CHECKING blocks too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(name, path.name == "__init__.py", node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in known else source)
    found.discard(name)
    return found


def import_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """module -> the modules it imports (third-party ones included, by their full name)."""
    known = modules(root, packages)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of the graph as a path (first node repeated at the end), or None: a depth-first search."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle is not None:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle is not None:
                return cycle
    return None


def _top(module: str) -> str:
    return module.split(".")[0]


def _within(graph: Mapping[str, set[str]], package: str) -> dict[str, set[str]]:
    return {
        name: {t for t in targets if _top(t) == package} for name, targets in graph.items() if _top(name) == package
    }


GRAPH = import_graph()


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("core", {"flows", "bot", "telegram", "sqlalchemy", "transitions", "aiosqlite", "alembic", "yaml"}),
        ("flows", {"bot", "telegram", "sqlalchemy", "aiosqlite", "alembic"}),
    ],
)
def test_a_layer_imports_nothing_above_it(package: str, forbidden: set[str]):
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _top(name) == package
        for target in targets
        if _top(target) in forbidden
    )
    assert wrong == []


def test_there_is_no_import_cycle_inside_core():
    core = _within(GRAPH, "core")
    assert len(core) >= 15  # the scan sees the package
    assert find_cycle(core) is None, " -> ".join(find_cycle(core) or [])


def test_flows_has_no_import_cycle_either():
    flows = _within(GRAPH, "flows")
    assert find_cycle(flows) is None, " -> ".join(find_cycle(flows) or [])


def test_the_graph_counts_imports_inside_functions_and_type_checking(tmp_path: Path):
    """The scan must see a lazy import: the cycle `models` <-> `validation` of issue 11 hid behind one."""
    package = tmp_path / "core"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text("def checks():\n    from core import validation\n    return validation\n")
    (package / "validation.py").write_text("from . import errors\n")
    (package / "errors.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from core.models import Lab\n"
    )
    graph = import_graph(tmp_path, ("core",))
    assert graph["core.models"] == {"core.validation"}
    assert graph["core.validation"] == {"core.errors"}
    assert graph["core.errors"] == {"typing", "core.models"}
    assert find_cycle(_within(graph, "core")) == ["core.errors", "core.models", "core.validation", "core.errors"]


def test_no_file_in_flows_or_bot_is_over_the_size_limit():
    lines = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in modules(ROOT, ("flows", "bot")).items()
    }
    assert len(lines) >= 30
    assert {name: count for name, count in lines.items() if count > MAX_LINES} == {}


def test_the_request_model_has_its_drug_checks_however_core_is_imported():
    """models no longer imports validation; validation installs the drug checks. A process that imports
    only `core.models` still gets them (importing any `core` module runs `core/__init__`, which does)."""
    script = (
        "from pydantic import ValidationError\n"
        "from core.models import DoseRequest\n"
        "try:\n"
        "    DoseRequest.model_validate({'drug': 'romiplostim', 'indication': 'mds', 'as_of': '2026-11-22'})\n"
        "except ValidationError as e:\n"
        "    print(e.errors()[0]['ctx']['message'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout == "'mds' is not an indication of romiplostim; expected one of itp\n"
