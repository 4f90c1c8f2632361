"""Running an export in one of three runtimes: onnxruntime, LiteRT, or Keras (TensorFlow).

Each runtime reads its own format of the export (the bundle's FORMATS, bundle.py)
and answers the same two calls: `probabilities(batch)` and `explain(pixels)`. All take
the same plain RGB pixels and give the same calibrated probabilities (the export
measures that they agree: deploy/parity.py). onnxruntime and LiteRT need no
TensorFlow: `pip install 'imgclf[serve]'` installs onnxruntime alone, and a server or
the CLI on it starts in a fraction of TensorFlow's time. "auto" takes the first
runtime in RUNTIMES that is installed and whose file the export has.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from imgclf.bundle import FORMATS, SERVED, Bundle

RUNTIMES = SERVED  # each runtime serves the format of its name; "auto" tries them in order


class RuntimeUnavailable(Exception):
    """A runtime cannot serve this export: not installed, or its file missing or broken."""


class Runtime(Protocol):
    name: str

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities for a float32 batch of pixels."""

    def explain(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, heatmap of the predicted class in [0, 1]) for one image."""

    def io_shapes(self) -> tuple[tuple, tuple]:
        """(input shape, output shape), None for the batch dimension."""


def installed(name: str) -> bool:
    """Whether the runtime's package can be imported here."""
    return importlib.util.find_spec(FORMATS[name].package) is not None


def choose(bundle: Bundle, requested: str = "auto") -> str:
    """The runtime to serve `bundle` with: `requested`, or auto's choice."""
    if requested != "auto":
        if requested not in RUNTIMES:
            raise RuntimeUnavailable(
                f"runtime {requested!r}: choose one of auto, {', '.join(RUNTIMES)}"
            )
        if not installed(requested):
            raise RuntimeUnavailable(
                f"the {requested} runtime is not installed: {FORMATS[requested].install}"
            )
        return requested
    for name in RUNTIMES:
        if installed(name) and bundle.has(name):
            return name
    raise RuntimeUnavailable(
        f"no runtime can serve {bundle.root}/: it needs one of "
        + ", ".join(f"{FORMATS[n].file} with {FORMATS[n].package}" for n in RUNTIMES)
    )


def open_runtime(bundle: Bundle, name: str, threads: int | None = None) -> Runtime:
    """The runtime `name` reading its format of `bundle` (RuntimeUnavailable if it cannot);
    `threads`: the threads one call may use (default: the runtime's own, all cores)."""
    path = bundle.file(name)
    if not path.is_file():
        raise RuntimeUnavailable(
            f"{path} not found: the export has no {name} file (export.formats)"
        )
    return open_file(FORMATS[name].runtime, path, bundle.explain, threads)


def open_file(
    runtime: str, path: Path, explain: Path | None = None, threads: int | None = None
) -> Runtime:
    """The runtime `runtime` on one model file (`explain`: onnx's Grad-CAM graph, if any).

    `threads` applies to onnxruntime and LiteRT; TensorFlow's threads are the process's.
    """
    try:
        if runtime == "onnx":
            return OnnxRuntime(path, explain, threads)
        if runtime == "tflite":
            return LiteRtRuntime(path, threads)
        return KerasRuntime(path)
    except RuntimeUnavailable:
        raise
    except Exception as exc:  # a truncated or foreign file fails in many ways inside a runtime
        raise RuntimeUnavailable(f"{path} cannot be loaded ({type(exc).__name__}: {exc})") from None


def _shape(dims: list) -> tuple:
    return tuple(d if isinstance(d, int) else None for d in dims)


class OnnxRuntime:
    """onnxruntime on the CPU; sessions run concurrent calls safely."""

    name = "onnx"

    def __init__(self, path: Path, explain: Path | None = None, threads: int | None = None) -> None:
        import onnxruntime

        self._onnxruntime = onnxruntime
        self._threads = threads
        self._session = self._open(path)
        self._input = self._session.get_inputs()[0].name
        self._explain_file = explain
        self._explainer = None
        self._lock = threading.Lock()

    def _open(self, path: Path):
        options = self._onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its start-up notes are not ours to print
        if self._threads:
            options.intra_op_num_threads = self._threads
        return self._onnxruntime.InferenceSession(str(path), options, ["CPUExecutionProvider"])

    def io_shapes(self) -> tuple[tuple, tuple]:
        return (
            _shape(self._session.get_inputs()[0].shape),
            _shape(self._session.get_outputs()[0].shape),
        )

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: batch.astype(np.float32, copy=False)})[0]

    def explain(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._explainer is None:
                if self._explain_file is None or not self._explain_file.is_file():
                    raise RuntimeUnavailable(
                        f"{self._explain_file or 'no Grad-CAM graph'} not found: heatmaps need it"
                    )
                self._explainer = self._open(self._explain_file)
        probabilities, heatmap = self._explainer.run(
            None, {"pixels": pixels[None].astype(np.float32)}
        )
        return probabilities[0], heatmap[0]


class LiteRtRuntime:
    """LiteRT's interpreter (the TFLite runtime without TensorFlow); one call at a time."""

    name = "tflite"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = 1
        self._lock = threading.Lock()  # an interpreter holds one set of tensors

    def io_shapes(self) -> tuple[tuple, tuple]:
        return (None, *self._input["shape"][1:]), (None, *self._output["shape"][1:])

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            if len(batch) != self._batch:
                self._interpreter.resize_tensor_input(
                    self._input["index"], [len(batch), *batch.shape[1:]]
                )
                self._interpreter.allocate_tensors()
                self._batch = len(batch)
            self._interpreter.set_tensor(self._input["index"], batch.astype(np.float32, copy=False))
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output["index"]).copy()

    def explain(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise RuntimeUnavailable(
            "heatmaps are not computed on the tflite runtime: use onnx or keras"
        )


class KerasRuntime:
    """The Keras model itself (TensorFlow), with Grad-CAM from explain/gradcam.py."""

    name = "keras"

    def __init__(self, path: Path) -> None:
        import keras

        self.model = keras.models.load_model(path)
        # Keras makes its compiled predict step on first use; made here, once, threads
        # (the web app's, the CLI's) never race to make it.
        self.model.make_predict_function()
        self._gradcam = None
        self._lock = threading.Lock()

    def io_shapes(self) -> tuple[tuple, tuple]:
        return tuple(self.model.input_shape), tuple(self.model.output_shape)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        # Keras' compiled predict step: about a tenth of the time of an eager call for a
        # lone image (docs/benchmarks.md), with the same numbers.
        return np.asarray(self.model.predict_on_batch(batch.astype("float32")))

    def explain(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._gradcam is None:
                from imgclf.explain.gradcam import GradCam

                self._gradcam = GradCam(self.model)
        probabilities, heatmaps = self._gradcam.explain(pixels[None])
        return probabilities[0], heatmaps[0]
