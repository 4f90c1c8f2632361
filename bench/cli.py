"""The command line every case benchmark shares: where its projects live, which cases, docs."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def bench_arguments(doc: str, prefix: str, cases: list[str] | None = None):
    """The parsed `--keep DIR`, `--docs` (and `--cases` when the benchmark has several), and
    the folder its projects go in: DIR, or a new temporary one."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the case projects here")
    if cases:
        parser.add_argument("--cases", nargs="+", choices=cases, default=cases)
    parser.add_argument("--docs", action="store_true", help="write docs/benchmarks.md's table")
    args = parser.parse_args()
    return args, args.keep or Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
