"""The contract a family's module answers, as code: one Protocol per kind of family.

The machinery calls a family's module in exactly one way (training/scratch.py,
training/pretrained.py): these Protocols are those calls. `check` holds a module to
its kind's Protocol by signature, parameter by parameter, and `ModelFamily.builder`
runs it on import, so a module that drifts fails with its name and the difference,
not deep inside a training run. Importing this module imports no Keras.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import keras

    from imgclf.param_groups import Group, TransferParams


@dataclass(frozen=True)
class WeightsSource:
    """What a transfer family's `load_weights` put into its base."""

    pretrained: bool
    source: str  # the file loaded, or why none was


class ScratchFamily(Protocol):
    """A family trained from scratch: the whole model is its own."""

    def build_model(
        self,
        image_size: int,
        num_classes: int,
        params: Group,
        *,
        input_size: int,
        sync_batch_norm: bool,
    ) -> keras.Model:
        """The model on plain RGB pixels at `image_size`, working at `input_size` inside;
        `sync_batch_norm` when several workers train it."""


class TransferFamily(Protocol):
    """A transfer family: a pretrained base that the shared extractor and head go around
    (models/transfer.py). The machinery names the base (TransferParts.base)."""

    def preprocess(self, pixels: Any, /) -> Any:
        """What the base expects, from RGB pixels in [0, 255] (a Keras tensor)."""

    def build_base(self, input_size: int, params: TransferParams) -> keras.Model:
        """The base without weights, taking `input_size` pixels a side; its outputs are
        feature maps (one, or several that the extractor pools and concatenates)."""

    def load_weights(self, base: keras.Model, params: TransferParams) -> WeightsSource:
        """Put the pretrained weights `params` name into `base`; say what was loaded."""


_EMPTY = inspect.Parameter.empty
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class FamilyContractError(TypeError):
    """A family's module does not answer its kind's contract; the message says how."""


def members(protocol: type) -> dict[str, inspect.Signature]:
    """The calls `protocol` defines, each with its signature as a module function has it."""
    found = {}
    for name, value in vars(protocol).items():
        if inspect.isfunction(value) and not name.startswith("_"):
            signature = inspect.signature(value)
            found[name] = signature.replace(parameters=list(signature.parameters.values())[1:])
    return found


def differences(module: ModuleType, protocol: type) -> list[str]:
    """How `module` departs from `protocol`: one line per missing call or differing parameter.

    A positional-only parameter may take any name (the machinery passes it by position);
    every other parameter must have the Protocol's name and kind. A module may give a
    default where the Protocol has none (the machinery passes every argument), never the
    other way round, and may add only parameters with defaults.
    """
    found = []
    for name, expected in members(protocol).items():
        call = getattr(module, name, None)
        if not callable(call):
            found.append(f"{name}: missing")
            continue
        try:
            actual = list(inspect.signature(call).parameters.values())
        except (TypeError, ValueError):
            continue  # a builtin without a signature: nothing to compare
        wanted = list(expected.parameters.values())
        for index, parameter in enumerate(wanted):
            if index >= len(actual):
                found.append(f"{name}: lacks parameter {parameter.name!r}")
                continue
            has = actual[index]
            if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
                same = has.kind in _POSITIONAL
            else:
                same = (has.name, has.kind) == (parameter.name, parameter.kind)
            if parameter.default is not _EMPTY and has.default is _EMPTY:
                same = False
            if not same:
                found.append(
                    f"{name}: parameter {index + 1} is `{has}`, the contract: `{parameter}`"
                )
        found += [
            f"{name}: extra parameter {extra} without a default"
            for extra in actual[len(wanted) :]
            if extra.default is _EMPTY and extra.kind not in _VARIADIC
        ]
    return found


def check(module: ModuleType, protocol: type, family: str) -> None:
    """Raise FamilyContractError naming the family and its module when they differ."""
    found = differences(module, protocol)
    if found:
        raise FamilyContractError(
            f"model family {family!r}: {module.__name__} does not answer the "
            f"{protocol.__name__} contract (imgclf/models/contract.py): " + "; ".join(found)
        )
