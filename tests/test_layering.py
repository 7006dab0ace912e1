"""The layering, checked on the source (AST): an import that goes the wrong way fails here.

store ← core ← services ← (web, serving, ui, cli) ← app; leaves (errors, log_patterns) are for
everyone; settings sits beside services; nothing imports the UI; jobside (run in users'
environments) imports nothing of crispml."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "crispml"
LEAVES = {"errors", "log_patterns"}
ALLOWED: dict[str, set[str]] = {
    "store": set(),
    "core": {"store"},
    "settings": set(),
    "services": {"core", "store", "settings"},
    "web": {"core", "services", "settings"},
    "serving": {"core", "services", "settings"},
    "ui": {"core", "services", "settings"},
    # The command line is a composition root too: it starts the servers and migrates the store.
    "cli": {"core", "services", "settings", "store", "app", "serving"},
    "app": {"core", "services", "settings", "web", "serving"},
    "asgi": {"app"},
    "__main__": {"cli"},
    "__init__": set(),
    "jobside": set(),
    **{leaf: set() for leaf in LEAVES},
}
# Known exceptions, each with its reason; an entry that is no longer needed fails the test too.
EXCEPTIONS = {
    # The Deployment page's try-it form calls the API's own code (issue 22: one public function).
    ("crispml/ui/views/deployment.py", "serving"),
}


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("crispml.")}
    return found


def test_imports_go_the_right_way() -> None:
    wrong, used = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = layer_of(path)
        assert layer in ALLOWED, f"{path}: a new top-level module: give it a place in ALLOWED"
        for target in imported_layers(path) - {layer} - LEAVES:
            where = (str(path.relative_to(PACKAGE.parent)), target)
            if target in ALLOWED[layer]:
                continue
            if where in EXCEPTIONS:
                used.add(where)
                continue
            wrong.append(f"{where[0]} imports crispml.{target}")
    assert not wrong, "imports going the wrong way:\n" + "\n".join(wrong)
    assert used == EXCEPTIONS, f"exceptions no longer needed: {EXCEPTIONS - used}"


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    sample = PACKAGE / "store" / "db.py"
    assert "core" not in imported_layers(sample)
    bad = tmp_path / "bad.py"
    bad.write_text("from crispml.ui import context\nimport crispml.web.login\n")
    assert imported_layers(bad) == {"ui", "web"}
