"""fastconv.cli: the command-line programs, ``fastconv COMMAND [...]`` (also
``python -m fastconv COMMAND [...]``).

Each command lives in its own module with two functions: ``add_arguments(parser)`` fills
its argparse sub-parser and ``run(args)`` does the work and returns the exit status.
Adding a command is one entry in COMMANDS. ``train`` and ``evaluate`` share one module,
which registers both sub-parsers itself (``train.add_parser``).
"""
import importlib

from . import train
from .options import ArgumentParser, run_command

# name -> (module, one-line help)
COMMANDS = {
    "edges": ("fastconv.cli.edges", "write the edge image of a picture (or of a built-in "
                                    "synthetic one)"),
    "explain": ("fastconv.cli.explain", "walk through the lecture's examples, computed "
                                        "live by fastconv"),
    "bench": ("fastconv.cli.bench", "time the key cases beside PyTorch and write the report"),
    "convert": ("fastconv.cli.convert", "turn a PyTorch ResNet or MobileNetV2 state dict into "
                                        "a fastconv checkpoint"),
    "tune": ("fastconv.cli.tune", "autotune a network's convolutions ahead of time, into the "
                                  "autotune cache file"),
}


def build_parser():
    parser = ArgumentParser(
        prog="fastconv",
        description="fastconv: 2-D convolution, pooling, edge filters and LeNet-5 on NumPy "
                    "arrays, with C/OpenMP kernels.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    train.add_parser(commands)
    return parser


def main(argv=None):
    """Parse argv (sys.argv[1:] when None), run the command, return its exit status. A user
    mistake raises SystemExit(2) after one line on stderr (see fastconv.cli.options)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(args, f"{parser.prog} {args.command}")

