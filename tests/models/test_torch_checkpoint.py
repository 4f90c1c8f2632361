"""imgclf.models.torch_checkpoint: legacy PyTorch files read without PyTorch, and safely."""

from __future__ import annotations

import pickle
import struct
import sys

import numpy as np
import pytest

from imgclf.models.efficientnet import checkpoint_file
from imgclf.models.torch_checkpoint import MAGIC_NUMBER, CheckpointError, load_state_dict


def test_the_wheels_checkpoint_reads_as_named_arrays():
    state = load_state_dict(checkpoint_file("lite0"))
    assert len(state) == 296 and next(iter(state)) == "_conv_stem.weight"
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32
    assert sum(a.size for a in state.values() if a.dtype == np.float32) > 4_600_000
    # Running variances that are exactly zero are real (why BatchNorm's epsilon matters).
    assert any((state[k] == 0).any() for k in state if k.endswith("running_var"))
    assert np.isfinite(state["_blocks.15._project_conv.weight"]).all()


def test_a_truncated_file_is_an_error_naming_it(tmp_path):
    cut = tmp_path / "cut.pth"
    cut.write_bytes(checkpoint_file("lite0").read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match=r"cut.pth cannot be read .*truncated"):
        load_state_dict(cut)


def test_other_files_are_refused(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_bytes(b"hello")
    with pytest.raises(CheckpointError, match=r"notes\.pth"):
        load_state_dict(text)
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(pickle.dumps(12345))
    with pytest.raises(CheckpointError, match=r"no PyTorch magic number$"):
        load_state_dict(wrong)


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_a_checkpoint_cannot_run_code(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as file:
        for header in (MAGIC_NUMBER, 1001, {"little_endian": True}):
            pickle.dump(header, file, protocol=2)
        pickle.dump({"weight": _RunsCode()}, file, protocol=2)
    with pytest.raises(CheckpointError, match=r"refusing to load (posix|os)\.system"):
        load_state_dict(evil)


# --- crafted files: every pickle of the format, and tensors that reach past their storage ---


class _FakeTorch:
    """Stand-ins for the torch objects a legacy checkpoint names, so the tests can write one."""

    def __enter__(self):
        import sys
        import types

        torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

        class FloatStorage:
            pass

        def only_pickled(*args):
            raise AssertionError("only pickled, never called")

        FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
        torch.FloatStorage = FloatStorage
        # Both names torch has written tensors under; and a torch function no file may name.
        for module, name in ((utils, "_rebuild_tensor_v2"), (utils, "_rebuild_tensor"),
                             (torch, "save")):  # fmt: skip
            function = lambda *args: only_pickled()  # noqa: E731
            function.__module__, function.__qualname__ = module.__name__, name
            setattr(module, name, function)
        self.saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
        sys.modules.update({"torch": torch, "torch._utils": utils})
        return torch, utils

    def __exit__(self, *exc):
        import sys

        for name, module in self.saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _Tensor:
    def __init__(self, storage, offset, shape, stride, rebuild="_rebuild_tensor_v2"):
        self.args, self.rebuild = (storage, offset, shape, stride), rebuild

    def __reduce__(self):
        import sys

        return (getattr(sys.modules["torch._utils"], self.rebuild), (*self.args, False, {}))


def pickle_global(module: str, name: str) -> type:
    """A class that pickles as a reference to `module.name` (while it is there to be found:
    pickle checks the name; the reader never should look it up)."""
    return type(name, (), {"__module__": module, "__qualname__": name})


class _StorageRef:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class _TouchesFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def write_checkpoint(
    path, tensors: dict, values: np.ndarray, evil_at: int | None = None, **changes
):  # fmt: skip
    """A legacy checkpoint of `tensors` ({name: (offset, shape, stride)}) over one float
    storage holding `values`; with `evil_at`, that one of the five pickles would run code
    (touching path + ".ran"). `changes` make it wrong in one way: `version`, `info` (the
    third pickle), `kind` (of the persistent ids), `numel` (the storage's declared size),
    `count` (its element count on disk), `rebuild` (the tensor function's name), `extra`
    (more entries of the state)."""
    with _FakeTorch() as (torch, _), open(path, "wb") as file:

        class Writer(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, _StorageRef):
                    kind = changes.get("kind", "storage")
                    return (kind, torch.FloatStorage, obj.key, "cpu", obj.numel, None)
                return None

        storage = _StorageRef("0", changes.get("numel", len(values)))
        rebuild = changes.get("rebuild", "_rebuild_tensor_v2")
        state = {name: _Tensor(storage, *layout, rebuild) for name, layout in tensors.items()}
        extra = changes.get("extra", {})
        state.update(extra)
        for value in extra.values():
            if isinstance(value, type):  # a global the pickle names: findable while pickled
                setattr(sys.modules[value.__module__], value.__qualname__, value)
        info = changes.get("info", {"little_endian": True})
        pickles = [MAGIC_NUMBER, changes.get("version", 1001), info, state, ["0"]]
        for index, value in enumerate(pickles):
            evil = _TouchesFile(f"{path}.ran")
            Writer(file, protocol=2).dump(evil if index == evil_at else value)
        for value in extra.values():
            if isinstance(value, type):
                delattr(sys.modules[value.__module__], value.__qualname__)
        file.write(struct.pack("<q", changes.get("count", len(values))))
        file.write(values.astype("<f4").tobytes())


def test_a_crafted_file_reads_like_the_real_format(tmp_path):
    good = tmp_path / "good.pth"
    write_checkpoint(good, {"w": (2, (2, 3), (3, 1)), "b": (0, (2,), (1,))}, np.arange(8.0))
    state = load_state_dict(good)
    np.testing.assert_array_equal(state["w"], [[2, 3, 4], [5, 6, 7]])
    np.testing.assert_array_equal(state["b"], [0, 1])


@pytest.mark.parametrize("pickle_index", range(5))
def test_no_pickle_of_the_file_can_run_code(tmp_path, pickle_index):
    evil = tmp_path / "evil.pth"
    write_checkpoint(evil, {"b": (0, (2,), (1,))}, np.arange(2.0), evil_at=pickle_index)
    with pytest.raises(CheckpointError, match=r"evil\.pth .*refusing to load (posix|os)\.system"):
        load_state_dict(evil)
    assert not (tmp_path / "evil.pth.ran").exists()


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ((0, (3, 4), (4, 1)), "tensor 'w' reaches element 11 of a storage of 8"),  # shape
        ((0, (9,), (1,)), "reaches element 8 of a storage of 8"),  # one past the end
        ((0, (1, 20), (20, 1)), "reaches element 19"),  # a dimension of 1 is checked too
        ((0, (2, 2), (1,)), "has 2 sizes but 1 strides"),
        ((6, (4,), (1,)), "reaches element 9"),  # offset past the end
        ((0, (2, 2), (1, 100)), "reaches element 101"),  # a stride past the end
        ((7, (2,), (-1,)), "negative"),  # a negative stride reads backwards
        ((-1, (2,), (1,)), "negative"),
    ],
)
def test_a_tensor_that_reaches_past_its_storage_is_refused(tmp_path, layout, message):
    bad = tmp_path / "bad.pth"
    write_checkpoint(bad, {"w": layout}, np.arange(8.0))
    with pytest.raises(CheckpointError, match=rf"bad\.pth .*{message}"):
        load_state_dict(bad)


def test_an_empty_tensor_reads_wherever_it_starts(tmp_path):
    empty = tmp_path / "empty.pth"
    write_checkpoint(empty, {"e": (10, (0, 3), (3, 1)), "b": (0, (2,), (1,))}, np.arange(8.0))
    state = load_state_dict(empty)
    assert state["e"].shape == (0, 3) and state["b"].tolist() == [0, 1]


def test_the_older_tensor_function_reads_too(tmp_path):
    older = tmp_path / "older.pth"
    write_checkpoint(older, {"w": (1, (3,), (2,))}, np.arange(8.0), rebuild="_rebuild_tensor")
    assert load_state_dict(older)["w"].tolist() == [1, 3, 5]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": 1000}, "an unknown PyTorch protocol version"),
        ({"info": {"little_endian": False}}, "written on a big-endian machine"),
        ({"info": {}}, "written on a big-endian machine"),  # unsaid: not assumed little
        ({"kind": "module"}, "unexpected persistent id ('module'"),
        ({"numel": 10}, "storage 0: expected 10 elements, got 32 bytes"),
        ({"count": -1}, "cannot be read as a PyTorch checkpoint"),  # a count that reads back
        ({"extra": {"hook": pickle_global("torch", "save")}}, "refusing to load torch.save"),
        ({"extra": {"hook": pickle_global("os", "FloatStorage")}},
         "refusing to load os.FloatStorage"),
    ],
    ids=["version", "big-endian", "endianness-unsaid", "persistent-id", "numel", "count",
         "torch-function", "storage-name-elsewhere"],
)  # fmt: skip
def test_a_file_wrong_in_one_way_is_refused_saying_how(tmp_path, changes, message):
    wrong = tmp_path / "wrong.pth"
    write_checkpoint(wrong, {"b": (0, (2,), (1,))}, np.arange(8.0), **changes)
    with pytest.raises(CheckpointError) as refused:
        load_state_dict(wrong)
    said = str(refused.value)
    assert said.startswith(f"{wrong} ") and message in said
    if changes.keys() - {"kind", "count"}:  # where the reason is ours alone: all of it
        assert said.endswith(message)


def test_one_storage_declared_with_two_sizes_is_refused(tmp_path):
    twice = tmp_path / "twice.pth"
    other = _Tensor(_StorageRef("0", 4), 0, (2,), (1,))
    write_checkpoint(twice, {"b": (0, (2,), (1,))}, np.arange(8.0), extra={"c": other})
    with pytest.raises(CheckpointError, match=r"one storage is declared with two sizes or types$"):
        load_state_dict(twice)
