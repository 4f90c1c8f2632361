"""Generated figures in the docs: the lines between `<!-- NAME:start -->` and its end marker."""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path


def replace_between(path: Path, name: str, text: str) -> None:
    """Put `text` between the `name` markers of `path` (ValueError if it has none)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    content = path.read_text(encoding="utf-8")
    if start not in content or end not in content:
        raise ValueError(f"{path} has no {start} ... {end} markers")
    before, rest = content.split(start, 1)
    _, after = rest.split(end, 1)
    path.write_text(f"{before}{start}\n{text.strip()}\n{end}{after}", encoding="utf-8")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of text cells."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """The CPU, its cores and the memory, for the docs' figures."""
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "unknown CPU",
    )  # fmt: skip
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB"


def stamp(command: str) -> str:
    """Where a table's figures come from: `command`, at this commit, today, on this machine."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    return f"`{command}` at `{commit}` on {datetime.date.today()}, {machine()}"
