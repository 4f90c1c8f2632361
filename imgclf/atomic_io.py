"""Writing stage outputs the same way every time: JSON, timings, whole directories."""

from __future__ import annotations

import contextlib
import csv
import ctypes
import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from imgclf import paths


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


@contextlib.contextmanager
def replaced_whole(path: Path, suffix: str = "") -> Iterator[Path]:
    """A partial file to write, which then replaces `path` in one step.

    A full disk or a killed run leaves the previous file, never half of a new one;
    the partial's name is the process's own, so several workers may write at once.
    `suffix` ends the partial's name, for writers that insist on one (".npy").
    """
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial{suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# A cell starting with one of these is a formula to a spreadsheet (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """`value` as a spreadsheet shows it: text that would start a formula gets a leading '."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def spreadsheet_unescaped(cell: str) -> str:
    """A cell as it was before spreadsheet_safe kept a spreadsheet from reading it as a formula."""
    return cell[1:] if cell.startswith("'") and cell[1:2] in FORMULA_STARTS and cell[1:] else cell


class SafeCsvWriter:
    """csv.DictWriter whose text cells cannot become formulas; floats get 4 decimals."""

    def __init__(self, writer: csv.DictWriter) -> None:
        self._writer = writer

    def writerow(self, row: dict) -> None:
        self._writer.writerow({
            key: f"{value:.4f}" if isinstance(value, float) else spreadsheet_safe(value)
            for key, value in row.items()
        })  # fmt: skip


@contextlib.contextmanager
def csv_table(path: Path, columns: list[str]) -> Iterator[SafeCsvWriter]:
    """A CSV with `columns`, written whole or not at all (replaced_whole).

    Text cells are spreadsheet-safe; a file name that is not valid UTF-8 (as Linux
    allows) is written back as the bytes it had, never a crash halfway through.
    """
    path = Path(path)
    with (
        replaced_whole(path) as partial,
        open(partial, "w", newline="", encoding="utf-8", errors="surrogateescape") as table,
    ):
        writer = csv.DictWriter(table, columns, lineterminator="\n")
        writer.writeheader()
        yield SafeCsvWriter(writer)


def write_json(path: Path, content: object) -> None:
    """Write JSON with sorted keys, floats rounded to 6 places and a final newline.

    Rounding keeps the last, machine-dependent digits of floating-point work out of
    files that git and `dvc metrics diff` compare. The file is replaced whole: a
    full disk or a killed run leaves the previous one, never half of a new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_rounded(content), indent=2, sort_keys=True)
    with replaced_whole(path) as partial:
        partial.write_text(text + "\n", encoding="utf-8")


def write_timings(stage: str, seconds: dict[str, float], root: Path = Path(".")) -> None:
    """timings/<stage>.json: how long the stage's parts took on its last run."""
    write_json(paths.timings_file(stage, root), seconds)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # not Linux, or a C library without renameat2
        return False
    at_cwd, exchange = -100, 2  # AT_FDCWD, RENAME_EXCHANGE from <fcntl.h> and <stdio.h>
    if renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # the file system cannot
        return False
    raise OSError(code, os.strerror(code), str(second))


def replace_directory(staging: Path, target: Path) -> None:
    """Swap a fully written `staging` directory in for `target`, atomically.

    Where the kernel can exchange the two in one step, a reader (the web app's
    reloader, a user's `ls`) sees the old directory or the new one, never none;
    elsewhere there is an instant between two renames without `target`, and a run
    killed in it leaves the old directory as `.<target>.retired`, which
    `recover_directory` puts back. The old directory is removed afterwards.
    """
    staging, target = Path(staging), Path(target)
    retired = target.with_name(f".{target.name}.retired")
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists() and _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # now the old directory
        return
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A fresh directory beside `target` to write into; swapped in for it when the block ends.

    If the block fails (a full disk, a bug) the staging directory is removed and
    `target` is left as it was; one left by a killed run is removed on the next.
    """
    target = Path(target)
    recover_directory(target)
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_directory(staging, target)


def recover_directory(target: Path) -> None:
    """Put back the directory a run killed between replace_directory's renames left retired."""
    target = Path(target)
    retired = target.with_name(f".{target.name}.retired")
    if retired.exists() and not target.exists():
        os.replace(retired, target)


def no_space_message(exc: OSError, what: str) -> str:
    """The message for a full disk: which path, that there is no space, and what to do."""
    where = exc.filename or what
    return (
        f"no space left on device while writing {where}: free some space (or point the "
        f"output somewhere larger) and run the stage again; the previous {what} is unchanged"
    )
