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
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        print(f"{stage}: error: {no_space_message(exc, writes)}", file=sys.stderr)
        sys.exit(2)
