"""The package's shape: imports flow one way, each library has one owner, modules stay small,
types hold (mypy --strict) and the code is linted and formatted (ruff)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "feeds"
MODULES = {path.stem: path for path in sorted(PACKAGE.glob("*.py"))}

OWNERS = {"click": "cli", "feedgen": "feed", "mjml": "newsletter", "flask": "web"}
"""Each of these libraries is imported by one module only."""


def imports(path: Path) -> set[str]:
    """Every module a file imports (feeds modules by their short name), at any depth."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from .x import y / from . import x
                found |= {node.module.split(".")[0]} if node.module else set()
                if not node.module:
                    found |= {alias.name for alias in node.names}
            elif node.module:
                found.add(node.module.split(".")[0])
    return found


def internal(name: str) -> set[str]:
    return {m for m in imports(MODULES[name]) if m in MODULES and m != name}


def test_imports_flow_one_way():
    """No module imports, directly or not, a module that imports it."""
    reach: dict[str, set[str]] = {}

    def reachable(name: str, seen: tuple[str, ...] = ()) -> set[str]:
        if name in seen:
            raise AssertionError(f"import cycle: {' -> '.join((*seen, name))}")
        if name not in reach:
            found: set[str] = set()
            for dep in internal(name):
                found |= {dep, *reachable(dep, (*seen, name))}
            reach[name] = found
        return reach[name]

    for name in MODULES:
        reachable(name)
    importers = {name for name, found in reach.items() if "cli" in found}
    assert importers <= {"__main__"}  # nothing else imports the command line
    assert internal("model") <= {"errors"} and not internal("errors")


@pytest.mark.parametrize(("library", "owner"), OWNERS.items())
def test_each_library_has_one_owner(library, owner):
    users = sorted(name for name, path in MODULES.items() if library in imports(path))
    assert users in ([owner], []), users


def test_no_module_is_over_400_lines():
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()
    }
    assert {name: n for name, n in sizes.items() if n > 400} == {}


def test_the_build_spine_reads_on_one_screen():
    tree = ast.parse(MODULES["build"].read_text(encoding="utf-8"))
    run = next(
        node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "run"
    )
    assert run.end_lineno - run.lineno + 1 < 80


def _tool(name: str) -> list[str]:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return [found]


def test_ruff_finds_nothing():
    root = PACKAGE.parent
    lint = subprocess.run([*_tool("ruff"), "check", "."], cwd=root, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    form = subprocess.run(
        [*_tool("ruff"), "format", "--check", "."], cwd=root, capture_output=True, text=True
    )
    assert form.returncode == 0, form.stdout


@pytest.mark.slow
def test_mypy_strict_passes():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "feeds"],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
