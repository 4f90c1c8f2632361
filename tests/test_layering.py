"""The package's layers: imports run one way, and each stage reaches only what it uses."""

from __future__ import annotations

from pathlib import Path

from support.imports import imported_modules, project_imports
from support.project import ROOT

PACKAGE = ROOT / "imgclf"


def unit(module: str) -> str:
    """What a module belongs to: its subpackage (`imgclf.training`), or itself at the top."""
    return ".".join(module.split(".")[:2])


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_graph() -> dict[str, set[str]]:
    """unit -> the other units its modules import (anywhere in a module, lazily too)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = unit(module_name(path))
        targets = {unit(m) for m in imported_modules(path) if m.count(".") >= 1}
        graph.setdefault(source, set()).update(targets - {source, "imgclf"})
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path, or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target] if target in path else [node, target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_no_two_parts_of_the_package_import_each_other():
    found = cycle(unit_graph())
    assert found is None, "imports run back up: " + " -> ".join(found)


def test_the_cycle_check_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_export_and_audit_import_no_training_recipe():
    # Changing the learning-rate schedule must not re-run the export or the audit.
    for stage in ("export", "audit"):
        imported = project_imports(ROOT / "stages" / f"{stage}.py")
        assert Path("imgclf/training/recipe.py") not in imported, stage
    assert not any(
        p.parts[:2] == ("imgclf", "training") for p in project_imports(ROOT / "stages/export.py")
    )


def test_compare_and_prepare_import_no_model_builder():
    for stage in ("compare", "prepare"):
        imported = {str(p) for p in project_imports(ROOT / "stages" / f"{stage}.py")}
        assert imported & {"imgclf/models/cnn.py", "imgclf/models/transfer.py"} == set(), stage
