"""The layering: each package imports only the layers below it, and no module is in an
import circle (lazy imports inside functions count too).

    ledger.core  <  ledger.durable  <  ledger.verify  <  ledger.mirror
                              keys  <  api  <  cli

``ledger.core`` does no file or network I/O: it imports none of the modules that do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ledger", "keys", "api", "cli")

#: What each layer may import from the project (besides itself).
ALLOWED: dict[str, set[str]] = {
    "ledger": set(),  # ledger/__init__.py: the version only
    "ledger.core": set(),
    "ledger.durable": set(),
    "ledger.verify": {"ledger", "ledger.core", "ledger.durable"},
    "ledger.mirror": {"ledger", "ledger.core", "ledger.durable", "ledger.verify"},
    "ledger.witness": {"ledger", "ledger.core", "ledger.durable", "ledger.verify"},
    "keys": {"ledger", "ledger.core", "ledger.durable"},
    "api": {"ledger", "ledger.core", "ledger.durable", "ledger.verify", "ledger.mirror", "keys"},
    "cli": {
        "ledger",
        "ledger.core",
        "ledger.durable",
        "ledger.verify",
        "ledger.mirror",
        "ledger.witness",
        "keys",
        "api",
    },
}

#: Standard-library modules that do file, network, process or thread I/O: not in the core.
IO_MODULES = {
    "asyncio", "concurrent", "fcntl", "ftplib", "glob", "http", "mmap", "multiprocessing",
    "pathlib", "select", "selectors", "shutil", "signal", "smtplib", "socket", "socketserver",
    "ssl", "subprocess", "tempfile", "threading", "urllib",
}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts and "versions" in path.parts:
                continue
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module imported anywhere in ``path`` (top level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # ``from pkg import submodule`` imports the submodule
            found.extend(
                (node.lineno, f"{base}.{a.name}")
                for a in node.names
                if f"{base}.{a.name}" in MODULES
            )
    return found


def _layer(module: str) -> str:
    """The layer a project module belongs to: the longest key of ALLOWED it starts with."""
    best = ""
    for layer in ALLOWED:
        if (module == layer or module.startswith(layer + ".")) and len(layer) > len(best):
            best = layer
    return best


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_lower_layers(module: str) -> None:
    layer = _layer(module)
    for lineno, target in _imports(MODULES[module]):
        if target.split(".")[0] not in PACKAGES:
            continue
        other = _layer(target)
        assert other == layer or other in ALLOWED[layer], (
            f"{MODULES[module].relative_to(ROOT)}:{lineno} imports {target!r}: the layer "
            f"{layer!r} may import only {sorted(ALLOWED[layer] | {layer})}"
        )


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if _layer(m) == "ledger.core"), ids=str
)
def test_core_does_no_io(module: str) -> None:
    path = MODULES[module]
    for lineno, target in _imports(path):
        assert target.split(".")[0] not in IO_MODULES, (
            f"{path.relative_to(ROOT)}:{lineno} imports {target!r}: the core does no file, "
            "network, process or thread I/O"
        )
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open", (
                f"{path.relative_to(ROOT)}:{node.lineno} opens a file: the core does no I/O"
            )


def test_no_import_circles() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for _, imported in _imports(path):
            # an import of a package's submodule also runs the package's __init__
            target = imported
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"
