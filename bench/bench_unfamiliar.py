"""Benchmark the unfamiliarity score: foreign images flagged, test images flagged, its cost.

    make bench-data && python -m bench.bench_unfamiliar [--keep /tmp/unfamiliar] [--docs]

For two cases of bench/datasets.py, the fashion case (the custom CNN is selected) and
the photos case (EfficientNet-Lite0 is selected), it builds the project in a throwaway
copy and runs the whole pipeline (`dvc repro`), then shows the exported model (models/
best/, through the project's own decoder and onnxruntime) the case's untouched test
split and 200 images of each foreign kind:

- photos unlike the case's (crops of the MATE desktop's abstract and desktop wallpapers;
  for the fashion case also the nature photographs the photos case learns from);
- drawings (Debian's pysiogame Art4Apps illustrations);
- another dataset (Fashion-MNIST training images 40,000-49,999, never used elsewhere, for
  the photos case);
- uniform noise, flat colours, and near-blank images (a flat colour with faint noise).

Per case it prints the share of each kind flagged unfamiliar, of all foreign images,
and of the test images, at the export's own threshold (chosen on validation); the
AUROC of telling test from foreign images; and the same for the plain baseline, one
minus the top probability, with its threshold chosen the same way on validation (the
same share of validation images flagged). Then what the score costs: the median batch-1
latency of the export's ONNX file against the same model without the score (converted
in this run), and both files' sizes; and whether the ONNX, LiteRT and Keras files flag
the same images.

`--keep DIR` keeps (and reuses) the projects; `--docs` writes the tables into
docs/benchmarks.md between its `unfamiliar` markers.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench import datasets
from bench.fashion_mnist import load_usable
from imgclf.bundle import Bundle
from support.markers import machine, markdown_table, replace_between
from support.project import commit_copy, copy_tracked_files, project_env

PER_KIND = 200
WALLPAPERS = (
    Path("/usr/share/backgrounds/mate/abstract"),
    Path("/usr/share/backgrounds/mate/desktop"),
)
CASES = {"fashion": datasets.write_fashion, "photos": datasets.write_photos}
LATENCY_ROUNDS, LATENCY_CALLS = 10, 200
SHARES = (0.01, 0.02, 0.03, 0.05)  # export.unfamiliar_share values whose trade-off is shown
DOCS = Path("docs/benchmarks.md")


def _crops(files: list[Path], count: int, rng: np.random.Generator) -> list[Image.Image]:
    """`count` random square-ish crops of the images in `files`, in turn."""
    crops = []
    for number in range(count):
        with Image.open(files[number % len(files)]) as opened:
            image = opened.convert("RGB")
        width, height = image.size
        side = int(rng.uniform(0.1, 0.5) * min(width, height))
        left, top = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        crops.append(image.crop((left, top, left + side, top + side)).resize((128, 128)))
    return crops


def foreign_images(case: str, seed: int = 0) -> dict[str, list[Image.Image]]:
    """The foreign kinds shown to `case`'s model, PER_KIND images each."""
    rng = np.random.default_rng(seed)
    wallpapers = sorted(p for folder in WALLPAPERS for p in folder.glob("*.*"))
    drawings = sorted(datasets.DRAWINGS.rglob("*.jpg"))
    if not wallpapers or not drawings:
        raise SystemExit("wallpapers or drawings missing: `make bench-data`")
    kinds = {
        "other photos": _crops(wallpapers, PER_KIND, rng),
        "drawings": _crops(drawings, PER_KIND, rng),
    }
    if case == "fashion":
        kinds["nature photos"] = _crops(sorted(datasets.PHOTOS.glob("*.jpg")), PER_KIND, rng)
    else:
        images, _ = load_usable()
        kinds["Fashion-MNIST"] = [Image.fromarray(image) for image in images[40_000:][:PER_KIND]]
    flat = rng.integers(0, 256, (PER_KIND, 1, 1, 3))
    kinds["noise"] = [
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(PER_KIND)
    ]
    kinds["flat colour"] = [
        Image.new("RGB", (64, 64), tuple(int(v) for v in c.ravel())) for c in flat
    ]
    kinds["near-blank"] = [
        Image.fromarray(np.clip(c + rng.normal(0, 6, (64, 64, 3)), 0, 255).astype(np.uint8))
        for c in rng.integers(0, 256, (PER_KIND, 1, 1, 3))
    ]
    return kinds


def build_project(root: Path, case: str, write_data=None) -> Path:
    """The case's project with its pipeline run (reused when `root` already holds it);
    `write_data(data_dir)` writes its images (default: CASES[case])."""
    project = root / case
    if Bundle(project / "models" / "best").is_export():
        print(f"== {case}: reusing {project}", flush=True)
        return project
    project.mkdir(parents=True, exist_ok=True)
    copy_tracked_files(project)
    (write_data or CASES[case])(project / "data")
    env = project_env(project)
    commit_copy(project, env)
    print(f"== {case}: dvc repro in {project}", flush=True)
    started = time.perf_counter()
    subprocess.run(["dvc", "repro"], cwd=project, env=env, check=True, capture_output=True)
    print(f"== {case}: pipeline took {time.perf_counter() - started:.0f} s", flush=True)
    return project


def _answers(predictor, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unfamiliarity, 1 - top probability) of each image, 64 at a time."""
    scores = [predictor.scores(pixels[start : start + 64]) for start in range(0, len(pixels), 64)]
    unfamiliarity = np.concatenate([s.unfamiliarity for s in scores])
    doubt = 1.0 - np.concatenate([s.probabilities for s in scores]).max(axis=1)
    return unfamiliarity, doubt


def _decoded(predictor, images: list[Image.Image]) -> np.ndarray:
    """The images through the project's decoder, as PNG files would reach it."""
    pixels = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pixels.append(predictor.pixels(buffer.getvalue()))
    return np.stack(pixels)


def detection(project: Path, case: str) -> dict:
    """Flagged shares and AUROC of the score and of the max-probability baseline."""
    from sklearn.metrics import roc_auc_score

    from imgclf.data.prepared import read_split
    from imgclf.evaluation.selective import is_unfamiliar, unfamiliar_threshold
    from imgclf.serving.predictor import Predictor

    predictor = Predictor.load(project / "models" / "best", "onnx")
    metadata = predictor.metadata
    test = read_split("test", project / "prepared").images
    val = read_split("val", project / "prepared").images
    test_score, test_doubt = _answers(predictor, np.asarray(test))
    val_score, val_doubt = _answers(predictor, np.asarray(val))
    share = json.loads((project / "metrics" / "export.json").read_text())["val_unfamiliar_share"]
    doubt_threshold = unfamiliar_threshold(val_doubt, share if share > 0 else 0.02)
    kinds, all_score, all_doubt = {}, [], []
    for kind, images in foreign_images(case).items():
        score, doubt = _answers(predictor, _decoded(predictor, images))
        kinds[kind] = {
            "score": float(is_unfamiliar(score, metadata.unfamiliar_threshold).mean()),
            "baseline": float(is_unfamiliar(doubt, doubt_threshold).mean()),
        }
        all_score.append(score)
        all_doubt.append(doubt)
    foreign_score, foreign_doubt = np.concatenate(all_score), np.concatenate(all_doubt)
    truth = np.r_[np.zeros(len(test_score)), np.ones(len(foreign_score))]
    # What another export.unfamiliar_share would have given, from the same scores.
    tradeoff = {}
    for other in SHARES:
        threshold = unfamiliar_threshold(val_score, other)
        tradeoff[str(other)] = {
            "test_flagged": float(is_unfamiliar(test_score, threshold).mean()),
            "foreign_flagged": float(is_unfamiliar(foreign_score, threshold).mean()),
        }
    return {
        "selected": metadata.selected_model,
        "test_images": len(test_score),
        "foreign_images": len(foreign_score),
        "threshold": metadata.unfamiliar_threshold,
        "kinds": kinds,
        "tradeoff": tradeoff,
        "score": {
            "foreign_flagged": float(
                is_unfamiliar(foreign_score, metadata.unfamiliar_threshold).mean()
            ),
            "test_flagged": float(is_unfamiliar(test_score, metadata.unfamiliar_threshold).mean()),
            "auroc": float(roc_auc_score(truth, np.r_[test_score, foreign_score])),
        },
        "baseline": {
            "foreign_flagged": float(is_unfamiliar(foreign_doubt, doubt_threshold).mean()),
            "test_flagged": float(is_unfamiliar(test_doubt, doubt_threshold).mean()),
            "auroc": float(roc_auc_score(truth, np.r_[test_doubt, foreign_doubt])),
        },
    }


def cost(project: Path, scratch: Path) -> dict:
    """The ONNX file's batch-1 latency and size against the same model without the score."""
    import keras

    from imgclf.deploy.formats import saved_model_to_onnx
    from imgclf.models.saving import export_saved_model
    from imgclf.serving.runtimes import open_file

    bundle = Bundle(project / "models" / "best")
    served = keras.models.load_model(bundle.file("keras"))
    plain = keras.Model(served.inputs, {"probabilities": served.output["probabilities"]})
    export_saved_model(plain, scratch / "plain_saved_model")
    saved_model_to_onnx(scratch / "plain_saved_model", scratch / "plain.onnx", ("probabilities",))
    runtimes = {
        "with score": open_file("onnx", bundle.file("onnx")),
        "without": open_file("onnx", scratch / "plain.onnx"),
    }
    size = bundle.read_metadata().image_size
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype(np.float32)
    times = {name: [] for name in runtimes}
    for _ in range(LATENCY_ROUNDS):  # interleaved: a machine's drift touches both alike
        for name, runtime in runtimes.items():
            runtime.scores(image)
            for _ in range(LATENCY_CALLS):
                started = time.perf_counter()
                runtime.scores(image)
                times[name].append(time.perf_counter() - started)
    with_score, without = (statistics.median(times[n]) for n in ("with score", "without"))
    return {
        "latency_ms": with_score * 1000,
        "latency_without_ms": without * 1000,
        "latency_factor": with_score / without,
        "onnx_bytes": bundle.file("onnx").stat().st_size,
        "onnx_without_bytes": (scratch / "plain.onnx").stat().st_size,
    }


def runtime_agreement(project: Path, case: str) -> dict:
    """The share of test and foreign images each runtime flags exactly as Keras does."""
    from imgclf.data.prepared import read_split
    from imgclf.evaluation.selective import is_unfamiliar
    from imgclf.serving.predictor import Predictor

    predictors = {
        name: Predictor.load(project / "models" / "best", name)
        for name in ("keras", "onnx", "tflite")
    }
    threshold = predictors["keras"].unfamiliar_threshold
    foreign = [image for images in foreign_images(case).values() for image in images]
    pixels = np.concatenate([
        np.asarray(read_split("test", project / "prepared").images),
        _decoded(predictors["keras"], foreign),
    ])  # fmt: skip
    flags = {
        name: is_unfamiliar(_answers(predictor, pixels)[0], threshold)
        for name, predictor in predictors.items()
    }
    return {name: float((flags[name] == flags["keras"]).mean()) for name in ("onnx", "tflite")}


def report(case: str, result: dict) -> str:
    d, c = result["detection"], result["cost"]
    lines = [
        f"{case}: {d['selected']} selected, {d['test_images']} test images, {d['foreign_images']} "
        f"foreign, threshold {d['threshold']:.3f}",
    ]
    for kind, shares in d["kinds"].items():
        lines.append(
            f"  {kind:14s} flagged {shares['score']:.1%} (max-probability {shares['baseline']:.1%})"
        )
    for name in ("score", "baseline"):
        r = d[name]
        lines.append(
            f"  {name:9s} foreign flagged {r['foreign_flagged']:.1%}, test flagged "
            f"{r['test_flagged']:.1%}, AUROC {r['auroc']:.4f}"
        )
    lines.append(
        f"  onnxruntime batch 1: {c['latency_ms']:.3f} ms with the score, "
        f"{c['latency_without_ms']:.3f} ms without ({c['latency_factor']:.3f}x); ONNX file "
        f"{c['onnx_bytes']:,} bytes vs {c['onnx_without_bytes']:,} "
        f"(+{c['onnx_bytes'] / c['onnx_without_bytes'] - 1:.1%})"
    )
    lines.append("  export.unfamiliar_share: " + "; ".join(
        f"{share} -> test {t['test_flagged']:.1%}, foreign {t['foreign_flagged']:.1%}"
        for share, t in d["tradeoff"].items()
    ))  # fmt: skip
    agree = result["runtimes"]
    lines.append(f"  same flag as Keras: onnx {agree['onnx']:.2%}, tflite {agree['tflite']:.2%}")
    return "\n".join(lines)


def write_docs(results: dict) -> None:
    rows = []
    for case, result in results.items():
        d, c, agree = result["detection"], result["cost"], result["runtimes"]
        rows.append([
            f"{case} ({d['selected']})",
            f"**{d['score']['foreign_flagged']:.1%}** / {d['baseline']['foreign_flagged']:.1%}",
            f"{d['score']['test_flagged']:.1%} / {d['baseline']['test_flagged']:.1%}",
            f"**{d['score']['auroc']:.4f}** / {d['baseline']['auroc']:.4f}",
            f"{c['latency_factor']:.3f}x",
            f"+{c['onnx_bytes'] / c['onnx_without_bytes'] - 1:.1%}",
            f"{min(agree.values()):.2%}",
        ])  # fmt: skip
    table = markdown_table(
        ["case", "foreign flagged (score / max-prob)", "test flagged", "AUROC",
         "onnx batch-1 latency", "ONNX file size", "same flags as Keras"],
        rows,
    )  # fmt: skip
    kinds = []
    for case, result in results.items():
        for kind, shares in result["detection"]["kinds"].items():
            kinds.append([case, kind, f"{shares['score']:.1%}", f"{shares['baseline']:.1%}"])
    by_kind = markdown_table(["case", "foreign kind", "score", "max-probability"], kinds)
    shares = [
        [case, share, f"{t['test_flagged']:.1%}", f"{t['foreign_flagged']:.1%}"]
        for case, result in results.items()
        for share, t in result["detection"]["tradeoff"].items()
    ]
    tradeoff = markdown_table(
        ["case", "export.unfamiliar_share", "test flagged", "foreign flagged"], shares
    )
    stamp = (
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()} (`python -m bench.bench_unfamiliar`)."
    )
    replace_between(DOCS, "unfamiliar", f"{table}\n\n{by_kind}\n\n{tradeoff}\n\n{stamp}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build (or reuse) the projects here")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--docs", action="store_true", help=f"write the tables into {DOCS}")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        for case in args.cases:
            project = build_project(root, case)
            results[case] = {
                "detection": detection(project, case),
                "cost": cost(project, Path(scratch)),
                "runtimes": runtime_agreement(project, case),
            }
            print(report(case, results[case]), flush=True)
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/unfamiliar.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.docs:
        write_docs(results)


if __name__ == "__main__":
    main()
