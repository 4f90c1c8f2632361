"""The export bundle (models/best/): its members named once, and the one way to reach them.

The export stage writes a bundle, deploy/ converts into it, the runtimes, `Predictor`, the
web app and the container read it; none of them spells a member's name. As Ultralytics'
exporter and runtime share one formats table, FORMATS is the table every writer and reader
of this project shares:

    metadata.json      what a server needs: classes, input size, thresholds (ExportMetadata)
    MODEL_CARD.md      what the model is and how it measured
    model.keras        the Keras model                        runtime keras
    saved_model/1/     TF Serving's version 1, the source of every conversion
    model.onnx         converted, checked against Keras       runtime onnx
    explain.onnx       Grad-CAM as ONNX, beside model.onnx    runtime onnx
    model.tflite       LiteRT, float32                        runtime tflite
    model_int8.tflite  LiteRT, fully integer                  checked, not served
    model_int8.onnx    ONNX, int8 convolutions                checked, not served

Importing this module imports neither TensorFlow nor any runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgclf.stage_files import ExportMetadata


@dataclass(frozen=True)
class Format:
    """One model file of the bundle and what runs it."""

    name: str  # as export.formats and `--runtime` name it
    file: str
    runtime: str  # the runtime (serving/runtimes.py) that reads it
    package: str  # the import that runtime needs
    install: str  # how to get that package
    converted: bool  # written from the SavedModel by deploy/formats.py, listed in export.formats
    int8: bool = False  # quantized: judged by the int8 bounds (deploy/parity.py), not served


_KERAS_INSTALL = "pip install 'imgclf[pipeline]' (TensorFlow and Keras)"
_ONNX_INSTALL = "pip install onnxruntime (or 'imgclf[serve]')"
_LITERT_INSTALL = "pip install ai-edge-litert"

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("keras", "model.keras", "keras", "keras", _KERAS_INSTALL, converted=False),
        Format("onnx", "model.onnx", "onnx", "onnxruntime", _ONNX_INSTALL, converted=True),
        Format("tflite", "model.tflite", "tflite", "ai_edge_litert", _LITERT_INSTALL, True),
        Format(
            "tflite_int8",
            "model_int8.tflite",
            "tflite",
            "ai_edge_litert",
            _LITERT_INSTALL,
            True,
            int8=True,
        ),
        Format(
            "onnx_int8", "model_int8.onnx", "onnx", "onnxruntime", _ONNX_INSTALL, True, int8=True
        ),
    )
}
# The formats a server loads, in the order "auto" tries them: fastest first. The int8 files
# are for devices; a server answers with the float files, which match Keras to 1e-4.
SERVED = ("onnx", "tflite", "keras")
# The formats export.formats may list (param_groups.ExportFormat; a test holds them equal).
CONVERTED = tuple(name for name, fmt in FORMATS.items() if fmt.converted)
# Grad-CAM's graph rides with the ONNX file: written, checked and refused on its own.
EXPLAIN = Format("explain_onnx", "explain.onnx", "onnx", "onnxruntime", _ONNX_INSTALL, True)

# The served model's outputs (models/served.py), by these names in every format, and
# those of the Grad-CAM graph.
PROBABILITIES, UNFAMILIARITY = "probabilities", "unfamiliarity"
OUTPUTS = (PROBABILITIES, UNFAMILIARITY)
EXPLAIN_OUTPUTS = (PROBABILITIES, "heatmap")

METADATA_FILE = "metadata.json"
CARD_FILE = "MODEL_CARD.md"
SAVED_MODEL_DIR = Path("saved_model") / "1"  # TF Serving reads numbered versions


@dataclass(frozen=True)
class Bundle:
    """An export directory: where each member is, and its metadata."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def file(self, fmt: str) -> Path:
        """The file of format `fmt` (a key of FORMATS)."""
        return self.root / FORMATS[fmt].file

    def has(self, fmt: str) -> bool:
        return self.file(fmt).is_file()

    @property
    def explain(self) -> Path:
        return self.root / EXPLAIN.file

    @property
    def metadata_file(self) -> Path:
        return self.root / METADATA_FILE

    @property
    def card(self) -> Path:
        return self.root / CARD_FILE

    @property
    def saved_model(self) -> Path:
        return self.root / SAVED_MODEL_DIR

    def is_export(self) -> bool:
        """Whether the directory holds an export at all (its metadata)."""
        return self.metadata_file.is_file()

    def read_metadata(self) -> ExportMetadata:
        """metadata.json, validated (StageFileError saying what to re-run when it is not)."""
        return ExportMetadata.read(self.metadata_file, "dvc repro export")

    def write_metadata(self, metadata: ExportMetadata) -> None:
        metadata.write(self.metadata_file)

    def write_card(self, text: str) -> None:
        self.card.write_text(text, encoding="utf-8")

    def members(self) -> tuple[Path, ...]:
        """What a server reads of an export: its metadata, the file of each runtime it may
        serve with, and the heatmap graph (it watches these for a new export, and digests
        them for the export's id; the int8 files are for devices and left out)."""
        return (self.metadata_file, *(self.file(name) for name in SERVED), self.explain)
