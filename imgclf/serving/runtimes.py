"""Running an export in one of three runtimes: onnxruntime, LiteRT, or Keras (TensorFlow).

Each runtime reads its own format of the export (the bundle's FORMATS, bundle.py)
and answers the same calls: `scores(batch)` (the calibrated probabilities and each
image's unfamiliarity score), `probabilities(batch)` and `explain(pixels)`. All take
the same plain RGB pixels and give the same answers (the export measures that they
agree: deploy/parity.py). onnxruntime and LiteRT need no
TensorFlow: `pip install 'imgclf[serve]'` installs onnxruntime alone, and a server or
the CLI on it starts in a fraction of TensorFlow's time. "auto" takes the first
runtime in RUNTIMES that is installed and whose file the export has.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from imgclf.bundle import EXPLAIN_OUTPUTS, FORMATS, PROBABILITIES, SERVED, UNFAMILIARITY, Bundle

RUNTIMES = SERVED  # each runtime serves the format of its name; "auto" tries them in order


class RuntimeUnavailable(Exception):
    """A runtime cannot serve this export: not installed, or its file missing or broken."""


@dataclass(frozen=True)
class Scores:
    """What an export answers for a batch: calibrated class probabilities, and each image's
    unfamiliarity score (models/familiarity.py; None from exports made before it)."""

    probabilities: np.ndarray
    unfamiliarity: np.ndarray | None = None

    @classmethod
    def of(cls, outputs: dict[str, np.ndarray] | np.ndarray) -> Scores:
        """From a model's outputs by name, or its one output (an older export's: the
        probabilities)."""
        if not isinstance(outputs, dict):
            return cls(np.asarray(outputs))
        if PROBABILITIES not in outputs and len(outputs) == 1:
            return cls(np.asarray(next(iter(outputs.values()))))
        score = outputs.get(UNFAMILIARITY)
        return cls(np.asarray(outputs[PROBABILITIES]), None if score is None else np.asarray(score))

    def __len__(self) -> int:
        return len(self.probabilities)

    def __getitem__(self, rows: slice) -> Scores:
        """The scores of some rows (a batch shared by several requests is split so)."""
        score = None if self.unfamiliarity is None else self.unfamiliarity[rows]
        return Scores(self.probabilities[rows], score)


class Runtime(Protocol):
    name: str

    def scores(self, batch: np.ndarray) -> Scores:
        """Calibrated class probabilities and unfamiliarity for a float32 batch of pixels."""

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities for a float32 batch of pixels (scores' first)."""

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
        self._outputs = [output.name for output in self._session.get_outputs()]
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
        outputs = self._session.get_outputs()
        probabilities = next((o for o in outputs if o.name == PROBABILITIES), outputs[0])
        return _shape(self._session.get_inputs()[0].shape), _shape(probabilities.shape)

    def scores(self, batch: np.ndarray) -> Scores:
        found = self._session.run(None, {self._input: batch.astype(np.float32, copy=False)})
        return Scores.of(dict(zip(self._outputs, found, strict=True)))

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.scores(batch).probabilities

    def explain(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._explainer is None:
                if self._explain_file is None or not self._explain_file.is_file():
                    raise RuntimeUnavailable(
                        f"{self._explain_file or 'no Grad-CAM graph'} not found: heatmaps need it"
                    )
                self._explainer = self._open(self._explain_file)
        probabilities, heatmap = self._explainer.run(
            list(EXPLAIN_OUTPUTS), {"pixels": pixels[None].astype(np.float32)}
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
        # The outputs by their names in the model's signature (their order is the converter's).
        signature = self._interpreter.get_signature_runner()
        self._outputs = {
            name: detail["index"] for name, detail in signature.get_output_details().items()
        }
        self._batch = 1
        self._lock = threading.Lock()  # an interpreter holds one set of tensors

    def io_shapes(self) -> tuple[tuple, tuple]:
        index = self._outputs.get(PROBABILITIES, next(iter(self._outputs.values())))
        shape = next(
            d["shape"] for d in self._interpreter.get_output_details() if d["index"] == index
        )
        return (None, *self._input["shape"][1:]), (None, *shape[1:])

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.scores(batch).probabilities

    def scores(self, batch: np.ndarray) -> Scores:
        with self._lock:
            if len(batch) != self._batch:
                self._interpreter.resize_tensor_input(
                    self._input["index"], [len(batch), *batch.shape[1:]]
                )
                self._interpreter.allocate_tensors()
                self._batch = len(batch)
            self._interpreter.set_tensor(self._input["index"], batch.astype(np.float32, copy=False))
            self._interpreter.invoke()
            return Scores.of({
                name: self._interpreter.get_tensor(index).copy()
                for name, index in self._outputs.items()
            })  # fmt: skip

    def explain(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise RuntimeUnavailable(
            "heatmaps are not computed on the tflite runtime: use onnx or keras"
        )


class KerasRuntime:
    """The Keras model itself (TensorFlow), with Grad-CAM from explain/gradcam.py."""

    name = "keras"

    def __init__(self, path: Path) -> None:
        import keras

        from imgclf.models import tta  # noqa: F401 (the test-time views' layers, registered)

        self.model = keras.models.load_model(path)
        # Keras makes its compiled predict step on first use; made here, once, threads
        # (the web app's, the CLI's) never race to make it.
        self.model.make_predict_function()
        self._gradcam = None
        self._lock = threading.Lock()

    def io_shapes(self) -> tuple[tuple, tuple]:
        output = self.model.output  # a served model's outputs by name; an older one's alone
        probabilities = output[PROBABILITIES] if isinstance(output, dict) else output
        return tuple(self.model.input_shape), tuple(probabilities.shape)

    def scores(self, batch: np.ndarray) -> Scores:
        # Keras' compiled predict step: about a tenth of the time of an eager call for a
        # lone image (docs/benchmarks.md), with the same numbers.
        outputs = self.model.predict_on_batch(batch.astype("float32"))
        return Scores.of(outputs)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.scores(batch).probabilities

    def explain(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._gradcam is None:
                from imgclf.explain.gradcam import GradCam

                self._gradcam = GradCam(self.model)
        probabilities, heatmaps = self._gradcam.explain(pixels[None])
        return probabilities[0], heatmaps[0]
