"""imgclf.models.torch_checkpoint: legacy PyTorch files read without PyTorch, and safely."""

from __future__ import annotations

import pickle

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
    with pytest.raises(CheckpointError, match="no PyTorch magic number"):
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
