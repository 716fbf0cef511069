"""The ``vecport`` command installed with the package."""

from __future__ import annotations

import signal
import sys

from . import _native


def main() -> None:
    """Runs the command line with this process's arguments and exits with its code."""
    # As the native binary: Ctrl-C ends the process (an interrupted export or
    # import continues with --resume).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(_native.cli_main(["vecport", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
