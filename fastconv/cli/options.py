"""How the command-line programs check what the user gives them: the one home of the
option validators and of the error report.

A user mistake (a bad option value, a missing or foreign file, a missing optional
package) ends the program with one line on stderr, ``fastconv COMMAND: error: ...``
naming the option and what is expected, and exit status 2, as argparse does for its own
errors. Anything else is a fault in fastconv and keeps its traceback.
"""
import argparse
import math
import os
import sys


class CommandError(Exception):
    """A user mistake found while a command runs; the message names the option."""


def report(prog, message):
    """End the program as argparse does for a user mistake: one line on stderr (the
    message's line breaks become spaces) and exit status 2."""
    sys.stderr.write(f"{prog}: error: {' '.join(str(message).split())}\n")
    raise SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with a one-line error report (the usage is one --help away)."""

    def error(self, message):
        report(self.prog, message)


def run_command(args, prog):
    """args.run(args), its exit status; a CommandError is reported as `prog`'s error."""
    try:
        return args.run(args)
    except CommandError as exc:
        report(prog, exc)


def _integer(text, minimum, expected, maximum=None):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise argparse.ArgumentTypeError(f"must be {expected}, got {value}")
    return value


def positive_int(text):
    """An option value that is an integer >= 1 (a count, a size)."""
    return _integer(text, 1, "a positive integer")


def thread_count(text):
    """An option value that is a thread count set_num_threads accepts: an integer from 1 to
    fastconv.config.MAX_THREADS (four per core, at least 16)."""
    from ..config import MAX_THREADS
    return _integer(text, 1, f"an integer from 1 to {MAX_THREADS} (four threads per core, "
                             f"at least 16)", MAX_THREADS)


def nonnegative_int(text):
    """An option value that is an integer >= 0 (a seed)."""
    return _integer(text, 0, "an integer >= 0")


def positive_float(text):
    """An option value that is a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def existing_file(text):
    """An option value naming a file that exists."""
    if not os.path.isfile(text):
        problem = "is a folder" if os.path.isdir(text) else "does not exist"
        raise argparse.ArgumentTypeError(f"expected an existing file, but {text} {problem}")
    return text


def output_file(text):
    """An option value naming a file to write: not a folder, in a folder that exists."""
    folder = os.path.dirname(text) or "."
    if os.path.isdir(text) or not os.path.isdir(folder):
        problem = (f"{text} is a folder" if os.path.isdir(text)
                   else f"there is no folder {folder}")
        raise argparse.ArgumentTypeError(f"expected a file to write, but {problem}")
    return text
