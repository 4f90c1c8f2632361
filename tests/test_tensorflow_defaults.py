"""Every entry point imports imgclf before TensorFlow, so imgclf's TensorFlow defaults
(oneDNN kernels on, C++ start-up notes off) apply to every stage, the CLI, the web app
and the benchmarks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support.project import ROOT

STAGES = sorted(path.stem for path in (ROOT / "stages").glob("*.py") if path.stem != "__init__")
BENCHMARKS = sorted(
    f"bench.{path.stem}" for path in (ROOT / "bench").glob("*.py") if path.stem != "__init__"
)
ENTRY_POINTS = [*(f"stages.{stage}" for stage in STAGES), "imgclf.__main__", "webapp", *BENCHMARKS]

# Imports `module` in a fresh interpreter and reports TF_ENABLE_ONEDNN_OPTS as it stood
# when TensorFlow or Keras was first asked for (the import is stopped there: TensorFlow
# reads the variable once, as it loads), or after the import if neither was.
PROBE = """
import importlib, importlib.abc, json, os, sys

class TensorFlowAsked(Exception):
    pass

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise TensorFlowAsked(os.environ.get("TF_ENABLE_ONEDNN_OPTS"))
        return None

sys.meta_path.insert(0, Watch())
try:
    importlib.import_module(sys.argv[1])
    print(json.dumps({"tensorflow": False, "value": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}))
except TensorFlowAsked as asked:
    print(json.dumps({"tensorflow": True, "value": asked.args[0]}))
"""


def probe(module: str, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        cwd=ROOT,
        env={**environment, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_entry_point_sets_onednn_before_tensorflow_loads(module):
    assert probe(module)["value"] == "1"


def test_the_probe_sees_tensorflow_loaded_first():
    # Keras imported before imgclf is caught (the variable is still unset).
    assert probe("keras") == {"tensorflow": True, "value": None}


def test_a_users_own_setting_wins():
    assert probe("stages.train", TF_ENABLE_ONEDNN_OPTS="0")["value"] == "0"
