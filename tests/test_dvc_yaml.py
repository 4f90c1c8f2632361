"""dvc.yaml agrees with the code: deps cover every import, every family has its stage."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from imgclf import models, paths
from support.imports import project_imports
from support.project import ROOT

STAGES = YAML(typ="safe").load((ROOT / "dvc.yaml").read_text())["stages"]


def names(entries: list) -> set[str]:
    """The paths of a stage's deps/outs/metrics list (entries may carry options)."""
    return {entry if isinstance(entry, str) else next(iter(entry)) for entry in entries}


def covered(file: Path, deps: set[str]) -> bool:
    return any(file == Path(dep) or Path(dep) in file.parents for dep in deps)


def imported_by(stage: str) -> tuple[Path, set[Path]]:
    """A stage's script, and every project file running it imports.

    A train stage's script imports its family's module by name (the registry's
    `module`): that module, and what it imports, count as imported.
    """
    _, script, *args = STAGES[stage]["cmd"].split()
    imported = project_imports(ROOT / script)
    if args:
        (family,) = args
        module = Path(models.get(family).module.replace(".", "/") + ".py")
        imported |= {module} | project_imports(ROOT / module)
    return Path(script), imported


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_deps_cover_every_project_file_the_stage_imports(stage):
    script, imported = imported_by(stage)
    deps = names(STAGES[stage]["deps"])
    assert str(script) in deps
    missing = sorted(str(f) for f in imported if not covered(f, deps))
    assert not missing, f"{stage} imports {missing}: add them (or their folder) to its deps"


@pytest.mark.parametrize("family", [family.name for family in models.families()])
def test_a_train_stage_depends_on_no_other_family_module(family):
    others = {Path(f.module.replace(".", "/") + ".py") for f in models.families()} - {
        Path(models.get(family).module.replace(".", "/") + ".py")
    }
    deps = names(STAGES[f"train_{family}"]["deps"])
    assert not [str(m) for m in others if covered(m, deps)], "list shared model files one by one"


def test_the_import_check_follows_the_package():
    # The train script reaches the glibc fix only through imgclf/training/fit.py.
    assert Path("imgclf/training/malloc_tuning.py") in project_imports(ROOT / "stages/train.py")
    assert Path("imgclf/models/cnn.py") not in project_imports(ROOT / "stages/prepare.py")


@pytest.mark.parametrize("family", [family.name for family in models.families()])
def test_every_registered_family_has_its_stage_and_feeds_compare_and_export(family):
    stage = STAGES[f"train_{family}"]
    assert stage["cmd"] == f"python stages/train.py {family}"
    assert stage["params"] == ["train", "augment", family]  # its own group, no other family's
    model_dir, metrics = str(paths.trained_model(family).parent), str(paths.metrics_file(family))
    assert model_dir in names(stage["outs"]) and metrics in names(stage["metrics"])
    assert f"{paths.live_dir(family)}/plots" in names(stage["outs"])
    assert metrics in names(STAGES["compare"]["deps"])
    assert {model_dir, metrics} <= names(STAGES["export"]["deps"])


def test_no_train_stage_without_a_registered_family():
    trained = {name.removeprefix("train_") for name in STAGES if name.startswith("train_")}
    assert trained == {family.name for family in models.families()}


def test_the_plots_draw_every_registered_family_and_no_other():
    plots = YAML(typ="safe").load((ROOT / "dvc.yaml").read_text())["plots"]
    curves = {next(iter(p)): p[next(iter(p))] for p in plots}
    for title, metric in (("Loss", "loss"), ("Accuracy", "accuracy")):
        drawn = set(curves[title]["y"])
        expected = {
            f"{paths.live_dir(family.name)}/plots/metrics/{split}/{metric}.tsv"
            for family in models.families()
            for split in ("train", "eval")
        }
        assert drawn == expected, f"dvc.yaml's {title} plot and the registry disagree"
    matrices = {p for p in curves if p.startswith(f"{paths.DVCLIVE}/")}
    assert matrices == {
        f"{paths.live_dir(f.name)}/plots/sklearn/confusion_matrix.json" for f in models.families()
    }


def test_stage_outputs_are_where_the_code_writes_them():
    assert str(paths.PREPARED) in names(STAGES["prepare"]["outs"])
    assert str(paths.metrics_file("prepare")) in names(STAGES["prepare"]["metrics"])
    assert str(paths.metrics_file("compare")) in names(STAGES["compare"]["metrics"])
    assert {str(paths.EXPORT), str(paths.EVALUATION)} <= names(STAGES["export"]["outs"])
    assert str(paths.metrics_file("export")) in names(STAGES["export"]["metrics"])
    assert str(paths.DATA) in names(STAGES["prepare"]["deps"])
