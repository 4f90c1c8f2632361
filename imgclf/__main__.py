"""Command line: predict and explain with the exported model, audit a folder, review findings.

imgclf predict DIR_OR_FILE...               one JSON object per image (folders are walked)
imgclf predict photos/ --csv photos.csv     the same as a table
imgclf predict s3://bucket/photos --engine ray --out preds/ --csv preds.csv
                                            Ray Data actors, resumable Parquet shards
imgclf explain IMAGE -o IMAGE_heatmap.png   the JSON answer, and a PNG of what drove it
imgclf audit FOLDER                         likely label errors, near-duplicates, outliers
imgclf review                               a page on 127.0.0.1 to decide about the findings

Quiet by default: a successful run writes nothing on stderr (-v shows TensorFlow's
own start-up lines); a progress bar is drawn only on a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from imgclf.serving import batch_predict
from imgclf.serving.predictor import DEFAULT_EXPORT_DIR, ModelNotExportedError, Predictor
from imgclf.serving.runtimes import RUNTIMES, RuntimeUnavailable


def silence_native_stderr() -> None:
    """Send what TensorFlow's C++ runtime writes to file descriptor 2 to /dev/null.

    Its start-up lines (absl's "All log messages before absl::InitializeLog()", oneDNN's
    notice) are written before TF_CPP_MIN_LOG_LEVEL is read. Python's sys.stderr keeps
    the real terminal, so this program's own messages and tracebacks still show.
    """
    sys.stderr.flush()
    real = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding="utf-8", errors="replace")


def named_sources(args: argparse.Namespace) -> list[str]:
    """The DIR_OR_FILE arguments, then the lines of --files-from."""
    sources = list(args.images)
    if args.files_from:
        lines = args.files_from.read_text(encoding="utf-8").splitlines()
        sources += [line.strip() for line in lines if line.strip()]
    return sources


def predict_command(predictor: Predictor, args: argparse.Namespace, top_k: int | None) -> int:
    try:
        sources = named_sources(args)
    except OSError as exc:
        print(f"error: cannot read --files-from {args.files_from}: {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.engine == "ray":
        return ray_predict_command(predictor, args, sources, top_k)
    files = batch_predict.expand(sources)
    if not files:
        print(f"error: no image files in {' '.join(sources)}", file=sys.stderr)
        return 1
    answers = batch_predict.predict_files(predictor, files, top_k)
    if sys.stderr.isatty():
        from tqdm import tqdm

        answers = tqdm(answers, total=len(files), unit="image", file=sys.stderr, leave=False)
    if args.csv:
        failures = batch_predict.write_csv(answers, args.csv)
    else:
        failures = batch_predict.write_json_lines(answers, sys.stdout)
    if failures:
        print(f"error: {failures} of {len(files)} file(s) could not be predicted", file=sys.stderr)
    return 1 if failures else 0


def ray_predict_command(
    predictor: Predictor, args: argparse.Namespace, sources: list[str], top_k: int | None
) -> int:
    """`--engine ray`: Parquet shards in --out (resumable), and the --csv table if asked."""
    from imgclf.serving import ray_predict

    if args.out is None:
        print(
            "error: --engine ray needs --out DIR, the folder of its Parquet shards", file=sys.stderr
        )
        return 2
    logging.getLogger("ray").setLevel(logging.ERROR)
    try:
        run = ray_predict.predict_with_ray(
            sources, args.out, Path(args.model_dir), runtime=predictor.runtime.name,
            top_k=top_k, num_cpus=args.num_cpus,
            shard_files=args.shard_files or ray_predict.SHARD_FILES, csv_path=args.csv,
        )  # fmt: skip
    except (ray_predict.RayUnavailable, ray_predict.OutputMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"interrupted: the finished shards are kept in {args.out}/; "
            "run the same command again to predict the rest",
            file=sys.stderr,
        )
        return 130
    if run.files == 0:
        print(f"error: no image files in {' '.join(sources)}", file=sys.stderr)
        return 1
    print(
        f"{run.files} files in {run.shards} shards under {args.out}/"
        f" ({run.resumed} kept from an earlier run)" + (f"; table: {args.csv}" if args.csv else ""),
        file=sys.stderr,
    )
    if run.errors:
        print(f"error: {run.errors} of {run.files} file(s) could not be predicted", file=sys.stderr)
    return 1 if run.errors else 0


def explain_file(predictor: Predictor, name: str, output: Path, top_k: int | None) -> int:
    """Print the answer for one file and write its Grad-CAM overlay; 0 on success, 1 if not."""
    decoded = batch_predict.decode_files([name], predictor.image_size, predictor.max_pixels)[0]
    if isinstance(decoded, str):
        print(f"error: {decoded}", file=sys.stderr)
        return 1
    try:
        answer, heatmap = predictor.explain_pixels(decoded, top_k)
    except RuntimeUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        heatmap.save(output, format="PNG")
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(json.dumps({"file": name, **answer, "heatmap": str(output)}))
    return 0


def audit_command(args: argparse.Namespace) -> int:
    """Print the audit of a folder; 0 when it ran (whatever it found), 2 on a user error."""
    from imgclf import params as params_file
    from imgclf.audit.folder import audit_folder, print_findings
    from imgclf.data.layout import DataError

    try:
        params = params_file.load(args.params)
        audit, skipped = audit_folder(args.folder, params)
    except (params_file.ParamsError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_findings(audit, skipped, sys.stdout, args.limit)
    if args.csv_dir:
        excluded: list[dict] = []
        audit.write(args.csv_dir, excluded, params.audit.gallery)
        print(f"\nwrote {args.csv_dir}/ (label_issues.csv, near_duplicates.csv, outliers.csv, "
              "label_issues.png)")  # fmt: skip
    return 0


def review_command(args: argparse.Namespace) -> int:
    """Serve the review page for the project in args.project until interrupted."""
    try:
        from werkzeug.serving import make_server

        from imgclf.review.app import create_review_app
    except ImportError as exc:
        print(f"error: {exc.name} is not installed: pip install 'imgclf[serve]'", file=sys.stderr)
        return 2
    project = args.project.resolve()
    if not (project / "data").is_dir() and not (project / "audit").is_dir():
        print(f"error: {project} has no data/ or audit/: run this in the project "
              "(or give --project), after `dvc repro audit`", file=sys.stderr)  # fmt: skip
        return 2
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per image shown
    app = create_review_app(project)
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    # The address carries this run's key: the page answers no one without it.
    address = f"http://127.0.0.1:{server.server_port}/?key={app.config['REVIEW_KEY']}"
    print(f"review: {address} (Ctrl+C stops it); decisions go "
          f"to {project / 'labels' / 'decisions.csv'}", flush=True)  # fmt: skip
    if not args.no_browser:
        import webbrowser

        webbrowser.open(address)  # nothing happens where there is no browser
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict", help="classify image files and folders with the exported model"
    )
    predict.add_argument("images", nargs="*", metavar="DIR_OR_FILE")
    predict.add_argument(
        "--csv", type=Path, help="write a table here (file, prediction, confidence, ...)"
    )
    predict.add_argument(
        "--files-from",
        type=Path,
        metavar="LIST",
        help="also the files (or URIs) named in LIST, one per line",
    )
    predict.add_argument(
        "--engine", choices=("threads", "ray"), default="threads",
        help="threads (default): this process; ray: Ray Data actors, locally or on RAY_ADDRESS's "
        "cluster, written as resumable Parquet shards (pip install 'imgclf[ray]')",
    )  # fmt: skip
    predict.add_argument(
        "--out", type=Path, help="ray: the folder of Parquet shards (run again to resume)"
    )
    predict.add_argument(
        "--num-cpus", type=int, default=None, help="ray: CPUs of the local Ray (default: all)"
    )
    predict.add_argument("--shard-files", type=int, default=None, help=argparse.SUPPRESS)
    explain = commands.add_parser(
        "explain", help="classify one image and draw a Grad-CAM heatmap of what drove it"
    )
    explain.add_argument("image", metavar="IMAGE")
    explain.add_argument(
        "-o", "--output", type=Path, help="PNG to write (default: IMAGE_heatmap.png beside it)"
    )
    audit = commands.add_parser(
        "audit", help="find likely label errors, near-duplicates and outliers in a folder"
    )
    audit.add_argument(
        "folder", type=Path, metavar="FOLDER",
        help="class folders of images (or train/val/test folders of them)",
    )  # fmt: skip
    audit.add_argument(
        "--params", type=Path, default=Path("params.yaml"),
        help="the project's params file, for audit.* (default: params.yaml here)",
    )  # fmt: skip
    audit.add_argument("--csv-dir", type=Path, help="also write the CSVs and gallery here")
    audit.add_argument("--limit", type=int, default=20, help="rows shown per finding")
    audit.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow's messages")
    review = commands.add_parser(
        "review", help="a page on 127.0.0.1 to relabel or exclude what the audit found"
    )
    review.add_argument("--project", type=Path, default=Path("."), help="default: here")
    review.add_argument("--port", type=int, default=0, help="default: any free port")
    review.add_argument("--no-browser", action="store_true", help="only print the address")
    review.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)
    for command in (predict, explain):
        command.add_argument(
            "--model-dir", default=str(DEFAULT_EXPORT_DIR), help="export directory"
        )
        command.add_argument(
            "--top-k", type=int, default=None,
            help="probabilities to list (default: metadata top_k)",
        )  # fmt: skip
        command.add_argument(
            "-v", "--verbose", action="store_true", help="show TensorFlow's own messages"
        )
        command.add_argument(
            "--runtime", choices=("auto", *RUNTIMES), default="auto",
            help="onnx (onnxruntime), tflite (LiteRT) or keras (TensorFlow); "
            "default auto: the fastest installed whose file the export has",
        )  # fmt: skip
    args = parser.parse_args(argv)
    if not args.verbose:
        silence_native_stderr()
    if args.command == "audit":
        return audit_command(args)
    if args.command == "review":
        return review_command(args)
    try:
        predictor = Predictor.load(args.model_dir, args.runtime)
    except ModelNotExportedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    top_k = args.top_k or predictor.metadata.top_k
    if args.command == "explain":
        image = Path(args.image)
        output = args.output or image.with_name(f"{image.stem}_heatmap.png")
        return explain_file(predictor, args.image, output, top_k)
    return predict_command(predictor, args, top_k)


def run() -> int:
    """The `imgclf` entry point: main(), quiet when its reader goes away (`| head`)."""
    try:
        return main()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return 1


if __name__ == "__main__":
    sys.exit(run())
