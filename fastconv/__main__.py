"""``python -m fastconv <command>``: the command-line interface.

Each command lives in its own module, which registers its subparsers with
``add_parser(subparsers)`` and sets ``func`` to the function that runs it.
"""
import argparse
import sys

from . import cli_train


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastconv", description="fastconv command line")
    subparsers = parser.add_subparsers(dest="command", required=True)
    cli_train.add_parser(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
