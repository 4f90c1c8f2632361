"""Benchmark what decoding an upload really takes, against what the server admits it for.

    python -m bench.bench_decode_memory

Every format and mode Pillow and pillow-heif open here (support/decode_memory.py: PNG in
every mode, palette with transparency, GIF and animated GIF, WebP lossy, lossless, RGBA
and animated, TIFF, HEIC, JPEG in RGB, grey and CMYK, BMP) at 2400 x 2400, each decoded
by `imgclf.images.decode_pixels` in a fresh interpreter. Prints the peak resident memory
the decode added, in bytes a pixel, beside the header-based estimate the server admits a
file by (IMGCLF_MAX_DECODE_MB), and their ratio: every ratio must stay below 1
(tests/test_images.py checks it).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from support.decode_memory import CASES, measure  # noqa: E402


def main() -> None:
    print(f"{'format and mode':22} {'file':>9} {'decoded at':>11} {'peak B/px':>9} "
          f"{'estimate B/px':>13} {'peak/estimate':>13}")  # fmt: skip
    worst = 0.0
    for name, make in CASES.items():
        data = make()
        found = measure(data)
        pixels = found["size"][0] * found["size"][1]
        ratio = found["peak"] / found["estimate"]
        worst = max(worst, ratio)
        side = "x".join(map(str, found["size"]))
        print(f"{name:22} {len(data) / 1e3:8.0f}k {side:>11} {found['peak'] / pixels:9.2f} "
              f"{found['estimate'] / pixels:13.2f} {ratio:13.2f}")  # fmt: skip
    print(f"highest peak/estimate: {worst:.2f} (above 1 would admit a file past its limit)")


if __name__ == "__main__":
    main()
