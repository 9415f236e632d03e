"""Imports run one way: the core at the bottom, the sides above it, coordinator on top.

docs/design.md#packages draws the layers. A module may import its own layer group and any
group below it, never one above, and the sides (projections, consumers) never each other.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Top-level packages, highest first; packages in one inner tuple may not import each other.
PACKAGES: list[tuple[str, ...]] = [("coordinator",), ("projections", "consumers"), ("core",)]

# Inside coordinator: the composition root on top, the write side's ports at the bottom.
COORDINATOR: list[tuple[str, ...]] = [
    ("coordinator.cli",),
    ("coordinator.entrypoints",),
    ("coordinator.dev",),
    ("coordinator.api", "coordinator.relay", "coordinator.replay", "coordinator.schema_export"),
    ("coordinator.bootstrap",),
    ("coordinator.adapters", "coordinator.migrations"),
    ("coordinator.service",),
]


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every absolute import in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def group_of(module: str, layers: list[tuple[str, ...]]) -> tuple[int, str] | None:
    """(layer index, group name) of the layer group holding `module`, if any."""
    for index, groups in enumerate(layers):
        for group in groups:
            if module == group or module.startswith(group + "."):
                return index, group
    return None


def violations(root: Path, packages: tuple[str, ...], layers: list[tuple[str, ...]]) -> list[str]:
    """Each import under `root`'s `packages` that runs up the layers or across siblings."""
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            own = group_of(module, layers)
            if own is None:
                continue
            for line, imported in imports(path):
                target = group_of(imported, layers)
                if target is None or target[1] == own[1]:
                    continue
                if target[0] <= own[0]:
                    where = f"{path.relative_to(root)}:{line}"
                    found.append(f"{where}: {own[1]} imports {imported}")
    return found


def test_packages_import_only_downwards() -> None:
    packages = tuple(name for groups in PACKAGES for name in groups)
    assert violations(ROOT, packages, PACKAGES) == []


def test_inside_coordinator_the_composition_root_is_on_top() -> None:
    assert violations(ROOT, ("coordinator",), COORDINATOR) == []


def test_the_domain_imports_only_the_standard_library() -> None:
    found = []
    for path in sorted((ROOT / "core" / "domain").rglob("*.py")):
        for line, imported in imports(path):
            top = imported.split(".")[0]
            if top not in sys.stdlib_module_names and not imported.startswith("core.domain"):
                found.append(f"{path.relative_to(ROOT)}:{line}: {imported}")
    assert found == []


def test_every_import_of_our_packages_names_a_module_that_exists() -> None:
    # mypy ignores missing imports (for the libraries without stubs), so a module moved
    # away under a file added on another branch would only fail when that file runs.
    ours = {name for groups in PACKAGES for name in groups} | {"tests", "bench"}
    missing = []
    for path in sorted(p for package in ours for p in (ROOT / package).rglob("*.py")):
        for line, imported in imports(path):
            if imported.split(".")[0] in ours | {"mail"} and not _exists(imported):
                missing.append(f"{path.relative_to(ROOT)}:{line}: {imported}")
    assert missing == []


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def test_an_import_against_the_direction_is_named(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "codec.py").write_text("import projections.store\n")
    (tmp_path / "projections").mkdir()
    (tmp_path / "projections" / "store.py").write_text(
        "from core.codec import x\n\ndef f():\n    from consumers.worker import y\n"
    )
    (tmp_path / "consumers").mkdir()
    (tmp_path / "consumers" / "worker.py").write_text("from core import codec\n")
    assert violations(tmp_path, ("core", "projections", "consumers"), PACKAGES) == [
        "core/codec.py:1: core imports projections.store",
        "projections/store.py:4: projections imports consumers.worker",
    ]
