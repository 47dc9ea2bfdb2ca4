"""The house stays as built: every module says what it is for, none grows past about 400
lines, and no function past about 60 without saying why. The import contracts (a stage
imports only the stages below it) are `make lint`'s, in pyproject.toml."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "notifyd"
MODULE_LINES = 420
FUNCTION_LINES = 70
# What a long function says, in its first lines, to be let through.
REASON = "Long on purpose"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


def name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@pytest.mark.parametrize("path", MODULES, ids=name)
def test_every_module_says_what_it_is_for(path: Path) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    if path.name == "__init__.py" and not tree.body:
        pytest.fail(f"{name(path)}: a package says what its stage does in its docstring")
    assert ast.get_docstring(tree), f"{name(path)} has no docstring"


@pytest.mark.parametrize("path", MODULES, ids=name)
def test_no_module_grows_past_about_400_lines(path: Path) -> None:
    lines = len(path.read_text("utf-8").splitlines())
    assert lines <= MODULE_LINES, f"{name(path)} has {lines} lines: split it by what it does"


@pytest.mark.parametrize("path", MODULES, ids=name)
def test_a_long_function_says_why(path: Path) -> None:
    text = path.read_text("utf-8")
    lines = text.splitlines()
    long = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            opening = "\n".join(lines[node.lineno - 1 : node.lineno + 15])
            if length > FUNCTION_LINES and REASON not in opening:
                long.append(f"{node.name} ({length} lines)")
    assert not long, f"{name(path)}: {', '.join(long)}: split, or say why ({REASON!r})"


def test_tests_share_helpers_through_support_modules_not_other_tests() -> None:
    """A helper imported from a test module drags its tests into the importer's run and
    hides where shared code lives: shared helpers are in conftest.py or a *_support.py."""
    borrowed = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.startswith("tests.") and module.split(".")[-1][:5] == "test_":
                borrowed.append(f"{path.relative_to(ROOT)}: from {module}")
    assert not borrowed, borrowed
