"""Benchmark the web app: per-request overhead and throughput under load, over real HTTP.

    make repro && python -m bench.bench_webapp [--model-dir models/best]

1. Overhead: the median /predict latency over HTTP (gunicorn, 1 worker, one client)
   against the median of decoding the same image plus one direct in-process model
   call, measured in the same run.
2. Load: 8 concurrent clients send 400 requests in total, against 1 worker and
   against the default number of workers (2), each with micro-batching on (the
   default) and off (IMGCLF_MAX_BATCH=1); errors, throughput, p50 and p99.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgclf.serving.predictor import Predictor  # noqa: E402
from support.server import Gunicorn, http, multipart  # noqa: E402


def sample_image() -> bytes:
    first = sorted((ROOT / "data").rglob("*.png"))
    if not first:
        sys.exit("no sample images in data/: run `make repro` (or `dvc pull data.dvc`) first")
    return first[0].read_bytes()


def in_process_median(model_dir: Path, image: bytes, repeats: int) -> float:
    predictor = Predictor.load(model_dir)
    predictor.probabilities(predictor.pixels(image)[None])  # warm-up, as the server does
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.probabilities(predictor.pixels(image)[None])
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def timed_request(url: str, body: bytes, content_type: str) -> tuple[float, int]:
    started = time.perf_counter()
    status, _ = http(url, body, content_type)
    return time.perf_counter() - started, status


def load(url: str, body: bytes, content_type: str, clients: int, total: int) -> dict:
    per_client = total // clients
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(
            pool.map(lambda _: timed_request(url, body, content_type), range(clients * per_client))
        )
    wall = time.perf_counter() - started
    latencies = sorted(seconds for seconds, _ in results)
    return {
        "errors": sum(status != 200 for _, status in results),
        "throughput": len(results) / wall,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99) - 1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "best")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    image = sample_image()
    body, content_type = multipart([("sample.png", image)])

    direct = in_process_median(args.model_dir, image, args.repeats)
    with Gunicorn(args.model_dir, workers=1) as server:
        url = f"{server.url}/predict"
        for _ in range(10):
            timed_request(url, body, content_type)
        over_http = statistics.median(
            timed_request(url, body, content_type)[0] for _ in range(args.repeats)
        )
    loads = {}
    for workers in (1, 2):
        for batching, env in (("batching on ", {}), ("batching off", {"IMGCLF_MAX_BATCH": "1"})):
            with Gunicorn(args.model_dir, workers=workers, extra_env=env) as server:
                url = f"{server.url}/predict"
                for _ in range(10):
                    timed_request(url, body, content_type)
                loads[f"{workers} worker(s), {batching}"] = load(url, body, content_type, 8, 400)

    print(f"web app, model {args.model_dir}, {len(image)}-byte PNG, {args.repeats} repeats")
    print(f"  decode + model call in-process, median : {direct * 1000:7.2f} ms")
    print(f"  POST /predict over HTTP, median        : {over_http * 1000:7.2f} ms")
    print(f"  ratio {over_http / direct:.2f} (target <= 1.15); HTTP, gunicorn and Flask add "
          f"{(over_http - direct) * 1000:.2f} ms")  # fmt: skip
    for name, result in loads.items():
        print(
            f"  load, 8 clients x 50 requests, {name}: {result['errors']} errors, "
            f"{result['throughput']:6.1f} req/s, p50 {result['p50'] * 1000:6.1f} ms, "
            f"p99 {result['p99'] * 1000:6.1f} ms"
        )


if __name__ == "__main__":
    main()
