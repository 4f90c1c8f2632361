"""imgclf.models.registry: one entry per family, found by name and by the model it builds."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imgclf import models
from imgclf.models.cnn import build_model
from imgclf.models.registry import CnnParams, ModelFamily
from support.project import ROOT


def test_every_family_is_registered_once_with_a_stage_named_after_it():
    names = [family.name for family in models.families()]
    assert {"cnn", "resnet", "efficientnet"} <= set(names) and len(names) == len(set(names))
    for family in models.families():
        assert family.stage == f"train_{family.name}" and family.title and family.description
        assert models.get(family.name) is family


def test_an_unknown_family_names_the_known_ones():
    with pytest.raises(KeyError, match=r"no model family .vit. \(known: cnn, "):
        models.get("vit")


def test_a_built_model_is_recognised_as_its_family():
    params = CnnParams(image_size="auto", filters=[4, 4, 4, 4], convs_per_block=1, dense_units=4,
                       dropout=0.0, learning_rate=0.01)  # fmt: skip
    cnn = build_model(32, 3, params)
    assert models.family_of(cnn) is models.get("cnn")


def test_a_second_different_family_under_the_same_name_is_refused():
    clash = ModelFamily(
        name="cnn", title="other", description="other", keras_name="other",
        module="imgclf.models.cnn", params=CnnParams, auto_input_size=(32, 64),
    )  # fmt: skip
    with pytest.raises(ValueError, match="registered twice"):
        models.register(clash)


def test_the_registry_imports_no_keras_so_compare_runs_without_tensorflow():
    code = (
        "import sys; from imgclf import models; import stages.compare; "
        "print([f.name for f in models.families()], "
        "sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['cnn', 'resnet', 'efficientnet'] []"


@pytest.mark.parametrize("family", models.families(), ids=lambda family: family.name)
def test_every_family_module_answers_the_contract_of_its_kind(family):
    builder = family.builder
    if family.transfer is None:
        expected = {"build_model"}
    else:
        expected = {"preprocess", "build_base", "load_weights"}
        family.transfer.backbone.format(**default_group(family))  # names only keys it has
    assert {name for name in expected if callable(getattr(builder, name, None))} == expected
    assert set(family.tiny_params) <= set(family.params.model_fields)


def default_group(family) -> dict:
    from imgclf import params

    return params.load(ROOT / "params.yaml").family(family.name).model_dump()


def test_a_transfer_family_preprocesses_with_its_own_module():
    from imgclf.models import efficientnet, resnet

    assert models.get("efficientnet").preprocess is efficientnet.preprocess
    assert models.get("resnet").preprocess is resnet.preprocess
    assert models.get("cnn").transfer is None
