"""Entry point of `python -m dream_core` and the `deepdream` script: the command line parsed (`parser`), the
command run, and whatever stops it said in one line with an exit status."""

from __future__ import annotations

import errno
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from .errors import DreamError, Terminated
from .parser import build_parser, flags_markdown, parse, verbose_asked
from .progress import after_bar

__all__ = ["build_parser", "flags_markdown", "main"]


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run a `deepdream` command line.

    Exit status: 0 done, 1 some inputs failed (or an unexpected error), 2 refused (a one-line
    reason), 130 Ctrl-C, 143 SIGTERM; a stopped command leaves no half-written file behind.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = verbose_asked(argv)  # argparse exits here on a malformed line, with its usage
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return parse(argv)()
    except Terminated:
        print(after_bar("terminated: nothing half-written was left"), file=sys.stderr)
        return 143
    except DreamError as err:
        if verbose:
            logging.exception("details")
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno != errno.ENOSPC:
            return _unexpected(err, verbose)
        where = f" writing {err.filename}" if err.filename else ""
        print(
            f"error: no space left on the disk{where}. Free some space and run the same command again (a video "
            "goes on from its last finished frame).",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(after_bar("interrupted: nothing half-written was left"), file=sys.stderr)
        return 130
    except Exception as err:  # a missing package, a model that cannot be built: one line, -v for the rest
        return _unexpected(err, verbose)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _unexpected(err: Exception, verbose: bool) -> int:
    if verbose:
        raise err
    name = f"the package {err.name!r} is missing; install it" if isinstance(err, ImportError) and err.name else err
    print(f"error: {type(err).__name__}: {name} (run with -v for details)", file=sys.stderr)
    return 1
