"""imgclf.models.registry: one entry per family, found by name and by the model it builds."""

from __future__ import annotations

import sys
import types

import pytest

from imgclf import models
from imgclf.models import contract, registry
from imgclf.models.cnn import build_model
from imgclf.models.registry import CnnParams, ModelFamily
from support.imports import heavy_modules_after
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
    statements = "from imgclf import models; import stages.compare; models.families()"
    assert heavy_modules_after(statements) == []


@pytest.mark.parametrize("family", models.families(), ids=lambda family: family.name)
def test_every_family_module_answers_the_contract_of_its_kind_by_signature(family):
    assert contract.differences(family.builder, family.contract) == []
    if family.transfer is not None:
        family.transfer.backbone.format(**default_group(family))  # names only keys it has
    assert set(family.tiny_params) <= set(family.params.model_fields)


def module_with(**functions) -> types.ModuleType:
    module = types.ModuleType("imgclf_test_family")
    module.__dict__.update(functions)
    return module


def build_base(input_size, params):
    return None


def load_weights(base, params):
    return None


def test_a_module_that_drifts_from_its_contract_is_refused_by_name(monkeypatch):
    # ResNet once took `(input_size, resnet=None)`: a call by keyword, or a base built
    # without its params, would have gone unnoticed.
    def drifted_base(input_size, resnet=None):
        return None

    def preprocess(x, data_format=None):  # Keras' own preprocess_input: one positional
        return x

    fine = module_with(preprocess=preprocess, build_base=build_base, load_weights=load_weights)
    assert contract.differences(fine, contract.TransferFamily) == []
    drifted = module_with(preprocess=preprocess, build_base=drifted_base)
    found = contract.differences(drifted, contract.TransferFamily)
    assert found[0].startswith("build_base: parameter 2 is `resnet=None`")
    assert found[1:] == ["load_weights: missing"]

    def keyword_model(image_size, num_classes, params, input_size, sync_batch_norm, extra):
        return None

    found = contract.differences(module_with(build_model=keyword_model), contract.ScratchFamily)
    assert [line.split(" is ")[0] for line in found] == [
        "build_model: parameter 4", "build_model: parameter 5",
        "build_model: extra parameter extra without a default",
    ]  # fmt: skip

    monkeypatch.setitem(sys.modules, "imgclf_test_family", drifted)
    family = ModelFamily(
        name="drifted", title="d", description="d", keras_name="d", module="imgclf_test_family",
        params=CnnParams, auto_input_size=(32, 32),
        transfer=registry.TransferParts("features", "base", "head", "d"),
    )  # fmt: skip
    with pytest.raises(contract.FamilyContractError, match=r"'drifted': imgclf_test_family "):
        family.builder  # noqa: B018 (the property imports and checks)


def default_group(family) -> dict:
    from imgclf import params

    return params.load(ROOT / "params.yaml").family(family.name).model_dump()


def test_a_transfer_family_preprocesses_with_its_own_module():
    from imgclf.models import efficientnet, resnet

    assert models.get("efficientnet").preprocess is efficientnet.preprocess
    assert models.get("resnet").preprocess is resnet.preprocess
    assert models.get("cnn").transfer is None
