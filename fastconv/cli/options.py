"""Option types the command-line programs share."""
import argparse

from ..config import check_thread_count


def thread_count(text):
    """argparse type of a --threads option: the count set_num_threads accepts, or argparse's
    usage error saying why not."""
    try:
        return check_thread_count(int(text), "--threads", "fastconv")
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
