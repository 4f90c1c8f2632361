"""Batch inference on Ray Data: `imgclf predict SOURCES --engine ray --out DIR`.

The files (folders, a list of files, or URIs that pyarrow opens: file://, s3://,
gs://, hdfs://) are sorted and dealt into shards of `shard_files`. Ray Data reads
them and runs the project's own decoder and the exported model in a pool of actors,
one per CPU, each holding the model with one intra-op thread (the actors, not the
threads, share the cores). The driver writes each finished shard whole, as
DIR/part-NNNNN.parquet; a partial shard is never seen under that name. Run the same
command again after an interruption: finished shards are kept, only the others are
predicted, so every file ends up in the output exactly once. An actor that dies is
restarted by Ray and its batch retried. At the end the shards are read back, in
order, into the CSV `imgclf predict --csv` writes.

Ray runs locally, started for the run with `num_cpus` CPUs, unless RAY_ADDRESS
names a cluster to join.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf.atomic_io import csv_table, replaced_whole
from imgclf.bundle import Bundle
from imgclf.serving.batch_predict import (
    BATCH,
    CSV_COLUMNS,
    csv_row,
    decode_files,
    expand,
    image_suffixes,
    record,
)

SHARD_FILES = 10_000
MANIFEST = "manifest.json"
PART = "part-{:05d}.parquet"
FILES_PER_BLOCK = 4 * BATCH  # Ray Data's unit of work: enough blocks for every actor


class RayUnavailable(RuntimeError):
    """Ray Data or pyarrow is not installed."""


class OutputMismatch(ValueError):
    """The output folder holds shards of other files or of another model."""


def _require_ray():
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data
    except ImportError:
        raise RayUnavailable("the ray engine needs Ray Data: pip install 'imgclf[ray]'") from None
    return ray


def is_uri(name: str) -> bool:
    return "://" in name


def list_files(sources: list[str]) -> list[str]:
    """The image files of `sources`, sorted per source: local folders walked as the CLI walks
    them, URIs listed through pyarrow's file systems (their image files, hidden ones
    skipped), anything else taken as one file."""
    files: list[str] = []
    for source in sources:
        files.extend(_list_uri(source) if is_uri(source) else expand([source]))
    return files


def _list_uri(uri: str) -> list[str]:
    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    scheme = uri.split("://", 1)[0]
    if filesystem.get_file_info(path).type == pafs.FileType.File:
        return [uri]
    suffixes = image_suffixes()
    found = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    names = []
    for info in found:
        relative = Path(info.path).relative_to(path).parts
        if info.type != pafs.FileType.File or any(p.startswith(".") for p in relative):
            continue
        if Path(info.path).suffix.lower() in suffixes:
            names.append(f"{scheme}://{info.path}")
    return sorted(names)


def absolute(name: str) -> str:
    """A local file's absolute path (a URI as it is)."""
    return name if is_uri(name) else str(Path(name).resolve())


def read_bytes(name: str) -> bytes:
    """A file's bytes: local, or through pyarrow's file system for its URI."""
    if not is_uri(name):
        with open(name, "rb") as file:
            return file.read()
    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(name)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


class Answerer:
    """A Ray actor: the exported model, answering a batch of file names with typed rows."""

    def __init__(self, model_dir: str, runtime: str, top_k: int | None, threads: int) -> None:
        from imgclf.serving.predictor import Predictor

        self.predictor = Predictor.load(model_dir, runtime, threads)
        self.top_k = top_k or self.predictor.metadata.top_k

    def __call__(self, batch):
        import pyarrow as pa

        names = [str(name) for name in batch["file"].to_pylist()]
        predictor = self.predictor
        # Read by absolute path (a cluster's workers do not start in this folder), answered
        # under the name given, as the threaded CLI answers.
        at = dict(zip(names, batch["path"].to_pylist(), strict=True))
        decoded = decode_files(
            names, predictor.image_size, predictor.max_pixels, lambda name: read_bytes(at[name])
        )
        good = [i for i, item in enumerate(decoded) if not isinstance(item, str)]
        answers: dict[int, dict] = {}
        if good:
            scores = predictor.scores(np.stack([decoded[i] for i in good]))
            answers = dict(zip(good, predictor.describe_batch(scores, self.top_k), strict=True))
        rows = [
            record(
                {"file": name, **answers[i]}
                if i in answers
                else {"file": name, "error": decoded[i]}
            )
            for i, name in enumerate(names)
        ]
        columns = {column: [row[column] for row in rows] for column in CSV_COLUMNS}
        return pa.table({"shard": batch["shard"], "row": batch["row"], **columns}, schema=schema())


def schema():
    """The Parquet shards' columns (pyarrow is imported only when Ray runs)."""
    import pyarrow as pa

    return pa.schema([
        ("shard", pa.int32()), ("row", pa.int32()), ("file", pa.string()),
        ("prediction", pa.string()), ("confidence", pa.float64()), ("uncertain", pa.bool_()),
        ("unfamiliar", pa.bool_()), ("unfamiliarity", pa.float64()),
        ("top_classes", pa.string()), ("error", pa.string()),
    ])  # fmt: skip


@dataclass(frozen=True)
class RayRun:
    files: int
    shards: int
    resumed: int  # shards found finished and kept
    errors: int  # files that could not be predicted


def _manifest(files: list[str], shard_files: int, model_dir: Path) -> dict:
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()
    model = hashlib.sha256(Bundle(model_dir).metadata_file.read_bytes()).hexdigest()
    return {"files": len(files), "shard_files": shard_files, "files_sha256": digest,
            "model_sha256": model}  # fmt: skip


def _check_output(out: Path, manifest: dict) -> None:
    """Refuse to mix shards of another file list or model into `out`; record ours."""
    found = out / MANIFEST
    if found.is_file():
        recorded = json.loads(found.read_text(encoding="utf-8"))
        if recorded != manifest:
            raise OutputMismatch(
                f"{out}/ holds predictions of other files or another model ({found}): "
                "choose another --out, or delete it to start again"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    with replaced_whole(found) as partial:
        partial.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def predict_with_ray(
    sources: list[str],
    out: Path,
    model_dir: Path,
    *,
    runtime: str = "onnx",
    top_k: int | None = None,
    num_cpus: int | None = None,
    shard_files: int = SHARD_FILES,
    csv_path: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> RayRun:
    """Predict every file of `sources` into out/part-*.parquet (resuming), then `csv_path`."""
    ray = _require_ray()
    files = list_files(sources)
    shards = [files[start : start + shard_files] for start in range(0, len(files), shard_files)]
    _check_output(out, _manifest(files, shard_files, model_dir))
    pending = [i for i in range(len(shards)) if not (out / PART.format(i)).is_file()]
    if pending:
        _run(ray, shards, pending, out, model_dir, runtime, top_k, num_cpus, progress)
    errors = write_csv(out, len(shards), csv_path) if csv_path else count_errors(out, len(shards))
    return RayRun(len(files), len(shards), len(shards) - len(pending), errors)


def _run(ray, shards, pending, out, model_dir, runtime, top_k, num_cpus, progress) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    started_here = not ray.is_initialized()
    if started_here:
        address = os.environ.get("RAY_ADDRESS")
        ray.init(
            address=address or None,
            num_cpus=None if address else (num_cpus or os.cpu_count()),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # shards finish one after another
        context.enable_progress_bars = False
        actors = max(1, int(ray.cluster_resources().get("CPU", 1)))
        table = pa.table({
            "shard": pa.array([i for i in pending for _ in shards[i]], pa.int32()),
            "row": pa.array([r for i in pending for r in range(len(shards[i]))], pa.int32()),
            "file": pa.array([name for i in pending for name in shards[i]], pa.string()),
            "path": pa.array([absolute(name) for i in pending for name in shards[i]], pa.string()),
        })  # fmt: skip
        blocks = [
            table.slice(start, FILES_PER_BLOCK) for start in range(0, len(table), FILES_PER_BLOCK)
        ]
        answered = ray.data.from_arrow(blocks).map_batches(
            Answerer,
            fn_constructor_kwargs={
                "model_dir": str(Path(model_dir).resolve()),
                "runtime": runtime,
                "top_k": top_k,
                "threads": 1,
            },
            batch_size=BATCH,
            batch_format="pyarrow",
            # Ray Data restarts a dead actor and retries its batch (max_restarts and
            # max_task_retries default to -1 for actor pools).
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        waiting: dict[int, list] = {}
        for batch in answered.iter_batches(batch_size=None, batch_format="pyarrow"):
            for shard in np.unique(batch["shard"].to_numpy()):
                rows = batch.filter(pa.compute.equal(batch["shard"], shard))
                waiting.setdefault(int(shard), []).append(rows)
                if sum(len(t) for t in waiting[int(shard)]) == len(shards[shard]):
                    whole = pa.concat_tables(waiting.pop(int(shard))).sort_by("row")
                    with replaced_whole(out / PART.format(shard), suffix=".parquet") as partial:
                        pq.write_table(whole.drop_columns(["shard", "row"]), partial)
            if progress:
                progress(len(batch))
    finally:
        if started_here:
            ray.shutdown()


def _shard_rows(out: Path, shards: int):
    import pyarrow.parquet as pq

    for shard in range(shards):
        part = out / PART.format(shard)
        if not part.is_file():
            raise FileNotFoundError(f"{part} is missing: run the same command again to finish")
        yield from pq.read_table(part).to_pylist()


def write_csv(out: Path, shards: int, path: Path) -> int:
    """The shards, in order, as `imgclf predict --csv`'s table; the number of failed files."""
    errors = 0
    with csv_table(path, CSV_COLUMNS) as writer:
        for row in _shard_rows(out, shards):
            writer.writerow(csv_row(row))
            errors += row["error"] is not None
    return errors


def count_errors(out: Path, shards: int) -> int:
    return sum(row["error"] is not None for row in _shard_rows(out, shards))
