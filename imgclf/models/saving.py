"""Saving and loading models, byte for byte the same for the same model.

DVC records a digest of every model it tracks, so a re-run that trains the same
weights must write the same bytes, or dvc.lock changes for nothing. Keras and
TensorFlow put the time and chance into their files in four places, mended here:
- `.keras` archives carry the save time (a zip entry's timestamp and
  `date_saved` in the archive's metadata): both are fixed;
- their config.json names objects that layers share by memory address
  (`shared_object_id`): they are numbered in order of appearance instead;
- a SavedModel lists its variables in the order of a set keyed by memory address
  (TensorFlow's FuncGraph.variables): they are put in the order the serving
  function captures them, which is the order of the model's own graph;
- a SavedModel's fingerprint.pb carries a random `uuid`: it is derived from the
  fingerprint's own checksums instead.
The seed generators of a model's dropout layers hold a state that is saved too:
callers seed Keras first (the export stage does).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import keras
from keras.src.saving import saving_lib  # the archive's member names

from imgclf import paths
from imgclf.atomic_io import replaced_whole

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def save_model(model: keras.Model, path: Path) -> None:
    """model.save(path) as a .keras archive without the time of saving in it, replacing
    `path` in one step: a run killed midway leaves the previous file, never half of one,
    and what earlier killed runs left beside it is swept away first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*"):  # a killed run's leftovers
        stale.unlink(missing_ok=True)
    staging = path.with_name(f".{path.name}.saving.keras")
    model.save(staging)
    with zipfile.ZipFile(staging) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with replaced_whole(path) as partial, zipfile.ZipFile(partial, "w") as archive:
        for info, content in entries:
            if info.filename == saving_lib._METADATA_FILENAME:
                metadata = json.loads(content)
                metadata.pop("date_saved", None)
                content = json.dumps(metadata).encode()
            elif info.filename == saving_lib._CONFIG_FILENAME:
                content = json.dumps(_numbered_shared_objects(json.loads(content))).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_TIME)
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            archive.writestr(fixed, content)
    staging.unlink()


def _numbered_shared_objects(config: object, numbers: dict | None = None) -> object:
    """`config` with each `shared_object_id` replaced by its order of first appearance."""
    numbers = {} if numbers is None else numbers
    if isinstance(config, list):
        return [_numbered_shared_objects(item, numbers) for item in config]
    if not isinstance(config, dict):
        return config
    renumbered = {key: _numbered_shared_objects(value, numbers) for key, value in config.items()}
    if "shared_object_id" in config:
        renumbered["shared_object_id"] = numbers.setdefault(
            config["shared_object_id"], len(numbers) + 1
        )
    return renumbered


def export_saved_model(model: keras.Model, directory: Path) -> None:
    """The model's forward pass as a TensorFlow SavedModel (endpoint `serve`), reproducibly."""
    from tensorflow.core.protobuf import fingerprint_pb2

    archive = keras.export.ExportArchive()
    archive.track(model)
    serve = archive.add_endpoint(
        "serve",
        model.__call__,
        input_signature=[keras.InputSpec(shape=(None, *model.input_shape[1:]), dtype="float32")],
    )
    concrete = serve.get_concrete_function()
    captured = {id(tensor): index for index, tensor in enumerate(concrete.captured_inputs)}
    concrete.graph.variables = sorted(
        concrete.graph.variables, key=lambda variable: captured[id(variable.handle)]
    )
    archive.write_out(str(directory), verbose=False)
    fingerprint_file = Path(directory) / "fingerprint.pb"
    fingerprint = fingerprint_pb2.FingerprintDef()
    fingerprint.ParseFromString(fingerprint_file.read_bytes())
    fingerprint.ClearField("uuid")
    digest = hashlib.sha256(fingerprint.SerializeToString(deterministic=True)).digest()
    fingerprint.uuid = str(int.from_bytes(digest[:16], "big"))
    fingerprint_file.write_bytes(fingerprint.SerializeToString(deterministic=True))


def load_trained_model(family: str) -> keras.Model:
    """models/<family>/model.keras, or a FileNotFoundError saying which stage makes it."""
    path = paths.trained_model(family)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `dvc repro train_{family}` first")
    return keras.models.load_model(path)
