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


#: Modules ledger/ may load by name at run time, and where: PyNaCl is an optional
#: accelerator of the Ed25519 rule, used only if installed and self-tested
#: (tests/test_ed25519_accel.py), so ledger/ works without it.
ALLOWED_DYNAMIC = {
    ("ed25519.py", "nacl"),
    ("ed25519.py", "nacl.bindings"),
    ("ed25519.py", "nacl.exceptions"),
}


def _dynamic_imports(path: Path) -> list[tuple[int, str]]:
    """Calls of importlib.import_module / __import__ and the names they load."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if name in ("import_module", "__import__"):
            arg = node.args[0] if node.args else None
            target = arg.value if isinstance(arg, ast.Constant) else "<computed>"
            found.append((node.lineno, str(target)))
    return found


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: p.name)
def test_core_loads_nothing_else_by_name(path: Path) -> None:
    for lineno, module in _dynamic_imports(path):
        top = module.split(".")[0]
        allowed = top == "ledger" or top in STDLIB or top in ALLOWED_THIRD_PARTY
        assert allowed or (path.name, module) in ALLOWED_DYNAMIC, (
            f"{path.relative_to(ROOT)}:{lineno} loads {module!r} by name; only the optional "
            "Ed25519 accelerator (PyNaCl, in ed25519.py) may"
        )


def test_core_works_without_the_accelerator() -> None:
    """With PyNaCl unimportable, the rule still decides (with cryptography alone)."""
    code = (
        "import sys\n"
        "sys.modules['nacl'] = None\n"
        "from ledger.core import ed25519\n"
        "print(ed25519.backend())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cryptography", out.stdout
