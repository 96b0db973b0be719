"""ARCHITECTURE.md's boundary: the framework packages never import the application
packages (they name application code in configuration instead)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORK = ("transport", "codecs", "fix_gateway", "cluster", "archive")
APPLICATION = ("sequencer", "venue", "feed", "strategy", "topology")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_no_framework_module_imports_an_application_package():
    offenders = []
    for pkg in FRAMEWORK:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] == "tickline" and len(parts) > 1 and parts[1] in APPLICATION:
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []
    assert not (ROOT / "cluster" / "sequencer.py").exists() and not (ROOT / "fix_gateway" / "exchange_sim.py").exists()


def test_the_application_packages_are_mapped_into_tickline():
    text = (ROOT / "pyproject.toml").read_text()
    for pkg in APPLICATION:
        assert f'"tickline/{pkg}" = "{pkg}"' in text
