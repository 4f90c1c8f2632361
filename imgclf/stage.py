"""What every stage script shares: clear exits on the errors a user can cause and fix."""

from __future__ import annotations

import sys
from collections.abc import Callable

from imgclf.artifacts import ArtifactError
from imgclf.data.layout import DataError
from imgclf.params import ParamsError

# Errors a user can cause and fix; anything else is a bug and keeps its traceback.
USER_ERRORS = (ParamsError, DataError, ArtifactError, FileNotFoundError)


def run(main: Callable[[], None], stage: str) -> None:
    """Run a stage's main(); a user error prints one clear message and exits with status 2."""
    try:
        main()
    except USER_ERRORS as exc:
        print(f"{stage}: error: {exc}", file=sys.stderr)
        sys.exit(2)
