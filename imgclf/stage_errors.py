"""What every stage script shares: clear exits on the errors a user can cause and fix."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable

from imgclf.atomic_io import no_space_message
from imgclf.data.layout import DataError
from imgclf.param_groups import ParamsError
from imgclf.stage_files import StageFileError

# Errors a user can cause and fix; anything else is a bug and keeps its traceback.
USER_ERRORS = (ParamsError, DataError, StageFileError, FileNotFoundError)


def run_stage(main: Callable[[], None], stage: str, writes: str = "outputs") -> None:
    """Run a stage's main(); a user error prints one clear message and exits with status 2.

    `writes` names what the stage writes, for the message a full disk gives.
    """
    try:
        main()
    except USER_ERRORS as exc:
        print(f"{stage}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        if not out_of_space(exc):
            raise
        full = exc if isinstance(exc, OSError) else OSError(errno.ENOSPC, str(exc))
        print(f"{stage}: error: {no_space_message(full, writes)}", file=sys.stderr)
        sys.exit(2)


def out_of_space(exc: BaseException) -> bool:
    """A full disk: Python's ENOSPC, or TensorFlow's own error for it (a SavedModel's
    variables are written by TensorFlow's C++ code, which raises ResourceExhaustedError)."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return type(exc).__module__.startswith("tensorflow") and "No space left on device" in str(exc)
