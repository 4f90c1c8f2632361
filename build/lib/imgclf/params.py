"""params.yaml: its schema (the shared groups and one per model family), read and validated.

A bad key or value stops with one clear message per key, naming it. The groups
themselves are declared in param_groups.py, and each family's in its registry entry.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from pydantic import BaseModel, ValidationError, create_model, model_validator
from ruamel.yaml import YAML, YAMLError

from imgclf import paths
from imgclf.models import registry
from imgclf.param_groups import (
    AuditParams,
    AugmentParams,
    CompareParams,
    ExportParams,
    Group,
    ParamsError,
    PrepareParams,
    TrainParams,
)

PARAMS_FILE = paths.PARAMS

__all__ = ["Params", "ParamsError", "load", "schema", "validate"]


class Params(Group):
    """The groups every project has; schema() adds one per registered model family."""

    prepare: PrepareParams
    audit: AuditParams
    train: TrainParams
    augment: AugmentParams
    compare: CompareParams
    export: ExportParams

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> Params:
        held_out = self.prepare.val_fraction + self.prepare.test_fraction
        if held_out > 0.8:
            raise ValueError(
                f"prepare.val_fraction + prepare.test_fraction = {held_out:g} leaves too little "
                "for training: keep the sum at or below 0.8"
            )
        return self

    def family(self, name: str) -> Group:
        """The params group of model family `name`."""
        return getattr(self, name)


def schema() -> type[Params]:
    """Params with each registered family's group, in registry order (params.yaml's order)."""
    return _schema(tuple((family.name, family.params) for family in registry.families()))


@functools.cache
def _schema(groups: tuple[tuple[str, type[Group]], ...]) -> type[Params]:
    fields = {name: (group, ...) for name, group in groups}
    return create_model("Params", __base__=Params, __module__=__name__, **fields)


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed at the parent of `loc` in the schema."""
    for key in loc[:-1]:
        annotation = model.model_fields[key].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(error: dict) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(part) for part in loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(schema(), loc))
        return f"{key}: unknown key (allowed here: {allowed}); remove or rename it"
    if kind == "missing":
        return f"{key}: missing key; add it (see docs/parameters.md)"
    message = error["msg"].removeprefix("Value error, ").replace(" after validation", "")
    message = re.sub(r"^(Input|List|String) should", "should", message)
    if kind == "value_error" and error["input"] is not None and isinstance(error["input"], dict):
        return message  # a check across keys names them itself
    return f"{key} = {error['input']!r}: {message}"


def validate(raw: object, source: str = str(PARAMS_FILE)) -> Params:
    """Validate already-parsed params, raising ParamsError naming every bad key."""
    try:
        return schema().model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise ParamsError(f"{source} is not valid:\n  " + "\n  ".join(lines)) from None


def load(path: Path | str = PARAMS_FILE) -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found: run from the project root, next to dvc.yaml")
    try:
        raw = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    return validate(raw, str(path))
