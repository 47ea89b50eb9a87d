"""`python -m feeds`, and the `feeds` command's entry point."""

from __future__ import annotations

import os
import sys


def run() -> None:
    """The `feeds` command: feeds.cli.main(), then end the process at once.

    A build leaves millions of objects (the parsed archive, the render index) that a normal
    exit frees one by one, adding a tenth of a second to every build; as mypy does, the output
    is flushed and the process ends without that. Tests and other callers use main().
    """
    from .cli import main

    try:
        main()
        status: object = 0
    except SystemExit as exc:
        status = exc.code
    if status is not None and not isinstance(status, int):
        print(status, file=sys.stderr)  # as Python does for sys.exit("message")
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: as the interpreter, report failure
        status = status or 120
    os._exit(status or 0)


if __name__ == "__main__":
    run()
