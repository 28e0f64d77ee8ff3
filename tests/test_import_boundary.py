"""ledger/ is the standalone verifier: it may import only the stdlib and cryptography."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "ledger"
ALLOWED_THIRD_PARTY = {"cryptography"}
STDLIB = set(sys.stdlib_module_names)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "ledger"))  # relative: stays inside the package
    return found


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: p.name)
def test_core_imports_only_stdlib_and_cryptography(path: Path) -> None:
    for lineno, module in _imports(path):
        top = module.split(".")[0]
        assert top == "ledger" or top in STDLIB or top in ALLOWED_THIRD_PARTY, (
            f"{path.relative_to(ROOT)}:{lineno} imports {module!r}; ledger/ may import only "
            "the standard library and cryptography"
        )


def test_core_imports_without_server_packages() -> None:
    """Import every core module with fastapi, sqlmodel, pydantic, httpx... made unimportable."""
    blocked = [
        "fastapi",
        "starlette",
        "sqlmodel",
        "sqlalchemy",
        "pydantic",
        "httpx",
        "requests",
        "uvicorn",
        "click",
        "rich",
        "api",
        "cli",
        "keys",
    ]
    modules = sorted(
        "ledger." + ".".join(p.relative_to(CORE).with_suffix("").parts)
        for p in CORE.rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "import importlib\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
