"""Command line: ``python -m fastconv COMMAND [...]`` (also installed as ``fastconv``).

Each command lives in its own module with two functions: ``add_arguments(parser)`` fills
its argparse sub-parser and ``run(args)`` does the work and returns the exit status.
Adding a command is one entry in COMMANDS. ``train`` and ``evaluate`` share one module,
which registers both sub-parsers itself (``cli_train.add_parser``).
"""
import argparse
import importlib
import sys

from . import cli_train

# name -> (module, one-line help)
COMMANDS = {
    "edges": ("fastconv.cli_edges", "write the edge image of a picture (or of a built-in "
                                    "synthetic one)"),
    "explain": ("fastconv.cli_explain", "walk through the lecture's examples, computed "
                                        "live by fastconv"),
    "bench": ("fastconv.bench", "time the key cases beside PyTorch and write the report"),
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastconv",
        description="fastconv: 2-D convolution, pooling, edge filters and LeNet-5 on NumPy "
                    "arrays, with C/OpenMP kernels.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    cli_train.add_parser(commands)
    return parser


def main(argv=None):
    """Parse argv (sys.argv[1:] when None), run the command, return its exit status."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
