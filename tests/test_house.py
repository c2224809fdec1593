"""The rules of the house (docs/architecture.md, "House rules"), checked on the source."""

from __future__ import annotations

import ast
import graphlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from radon.metrics import mi_rank, mi_visit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zuotang_cli"
DOCS = ROOT / "docs"

LAYERS: dict[str, int] = {
    "kernel": 0,
    "protocol": 1,
    "inputs": 2,
    "store": 3,
    "engine": 4,
    "outputs": 4,
    "app": 5,
    "cli": 6,
}
"""Each layer imports only layers of a lower rank (docs/architecture.md, "Layers")."""
EMULATOR_MAY_IMPORT = {"kernel", "protocol", "emulator"}
TOP = {"zuotang_cli", "zuotang_cli.__main__"}
"""The package itself (the lazy Python API) and ``python -m``: above every layer."""
MAX_CLASS_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = modules()


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in (*LAYERS, "emulator"):
        return parts[1]
    if len(parts) == 2 and parts[1] in (*LAYERS, "emulator"):
        return parts[1]  # a package's own __init__
    return "kernel"


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, skipping the bodies of ``if TYPE_CHECKING:`` (never run)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(module: str) -> set[str]:
    """The project modules ``module`` imports when it runs (at any depth of its code)."""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in runtime_nodes(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from package import module`` imports the module (the package's own
            # __init__ has run already); ``from module import name`` the module.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        for name in names:
            if name in MODULES and name != module:
                found.add(name)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_the_checks_see_the_code() -> None:
    """The graph is the real one: the CLI reaches the engine through the app."""
    assert "zuotang_cli.app.session" in GRAPH["zuotang_cli.cli.run"]
    assert "zuotang_cli.engine.batch" in GRAPH["zuotang_cli.app.session"]
    assert layer("zuotang_cli.engine.batch") == "engine"
    assert layer("zuotang_cli.status") == "kernel"
    assert layer("zuotang_cli.store") == "store"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in ``graph`` (a path that ends where it starts), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as cycle:
        return list(cycle.args[1])
    return None


def test_find_cycle_finds_one() -> None:
    cycle = find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}})
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"b"}}) is None


def test_no_import_cycle() -> None:
    assert find_cycle(GRAPH) is None


def test_a_layer_imports_only_layers_below_it() -> None:
    wrong = []
    for module, imported in GRAPH.items():
        if module in TOP:
            continue
        mine = layer(module)
        for other in imported:
            theirs = layer(other)
            if mine == "emulator":
                allowed = theirs in EMULATOR_MAY_IMPORT
            elif theirs == "emulator":
                allowed = mine == "cli"  # `zuotang emulator` runs it
            else:
                allowed = theirs == mine or LAYERS[theirs] < LAYERS[mine]
            if not allowed:
                wrong.append(f"{module} ({mine}) imports {other} ({theirs})")
    assert wrong == []


def imported_modules(tree: ast.Module) -> set[str]:
    """Local names bound to project modules by this file's imports."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name in MODULES and a.asname}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    names.add(alias.asname or alias.name)
    return names


def test_no_module_state_set_from_another_module() -> None:
    """``other_module.NAME = ...`` is how a global gets set from afar: never."""
    wrong = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = imported_modules(tree)
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id in imported
                ):
                    wrong.append(f"{module}:{node.lineno} sets {target.value.id}.{target.attr}")
    assert wrong == []


def test_no_class_over_400_lines() -> None:
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []


def test_every_module_is_maintainable() -> None:
    """radon's maintainability index: grade A or B for every file (C is below 10)."""
    grades = {
        module: mi_rank(mi_visit(path.read_text(encoding="utf-8"), multi=True))
        for module, path in MODULES.items()
    }
    assert set(grades.values()) <= {"A", "B"}, {m: g for m, g in grades.items() if g > "B"}


MARKUP = re.compile(
    r"<(html|head|body|div|script|style|table|span|a href)\b|\{\s*[a-z-]+\s*:[^}]*;", re.I
)
"""An HTML tag or a CSS rule; the emulator's tiny index page is a plain-text reply."""


def test_no_html_css_or_js_in_python() -> None:
    found = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and MARKUP.search(node.value):
                found.append(f"{module}:{node.lineno}")
    assert found == []


OUTSIDE = re.compile(r"design\.md|contract-evidence|\.\./shared")


def repository_texts() -> Iterator[Path]:
    yield from PACKAGE.rglob("*.py")
    yield from (ROOT / "tests").rglob("*.py")
    yield from DOCS.glob("*.md")
    yield from ROOT.glob("README*.md")


def test_no_reference_to_a_document_outside_the_repository() -> None:
    here = Path(__file__).resolve()
    found = [
        str(path.relative_to(ROOT))
        for path in repository_texts()
        if path.resolve() != here and OUTSIDE.search(path.read_text(encoding="utf-8"))
    ]
    assert found == []


DOC_REFERENCE = re.compile(r"docs/([\w-]+\.md)(?:,\s*\"([^\"]+)\")?")


def headings(document: Path) -> set[str]:
    return {
        line.lstrip("#").strip().replace("`", "")
        for line in document.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }


def test_every_pointer_into_docs_lands() -> None:
    """A docstring's pointer (a docs file, then a quoted section) names a file and a
    heading that exist."""
    broken = []
    seen = 0
    for path in repository_texts():
        for match in DOC_REFERENCE.finditer(path.read_text(encoding="utf-8")):
            seen += 1
            document = DOCS / match[1]
            if not document.is_file() or (match[2] and match[2] not in headings(document)):
                broken.append(f"{path.name}: {match[0]}")
    assert seen > 10
    assert broken == []


@pytest.mark.parametrize("document", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_links_between_documents_land(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if "://" not in t and not (document.parent / t).exists()]
    assert missing == []
