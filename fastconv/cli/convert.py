"""Convert a PyTorch state dict of ResNet or MobileNetV2 (the usual CIFAR definitions) into a
fastconv checkpoint that ``fastconv evaluate`` and :func:`fastconv.nn.load_checkpoint` read.
Reading the .pt file needs PyTorch; the checkpoint it writes does not."""
import math
import os

from ..nn.checkpoint import save_checkpoint
from .options import CommandError, existing_file
from .train import DATASETS, MODELS, build_model


def add_arguments(parser):
    parser.add_argument("file", type=existing_file,
                        help="a .pt file: a state dict, or a dict holding one under "
                             "'state_dict' (torch.save(model.state_dict(), ...))")
    parser.add_argument("--model", required=True,
                        choices=[m for m in MODELS if m != "lenet5"],
                        help="the architecture the state dict is for")
    parser.add_argument("--dataset", choices=DATASETS, default="cifar10",
                        help="the images it takes (default cifar10: 3 channels); evaluate "
                             "uses it")
    parser.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                        help="the per-channel mean the PyTorch model's inputs were "
                             "normalised with, on pixels scaled to [0, 1] (e.g. CIFAR-10's "
                             "0.4914 0.4822 0.4465); stored, so raw images get it")
    parser.add_argument("--std", type=float, nargs="+", default=None, metavar="S",
                        help="the per-channel standard deviation likewise (e.g. 0.2470 "
                             "0.2435 0.2616)")
    parser.add_argument("-o", "--output", required=True,
                        help="the checkpoint to write (.npz); an existing file needs "
                             "--overwrite")
    parser.add_argument("--overwrite", action="store_true", help="replace --output")


def read_state_dict(path):
    """The state dict in a .pt file, read with torch.load(weights_only=True)."""
    try:
        import torch
    except ImportError:
        raise CommandError("file: reading a PyTorch file needs PyTorch (pip install "
                           "torch); the converted checkpoint does not") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:                  # pickle, zip and torch errors alike
        raise CommandError(f"file: {path} is not a PyTorch file torch.load reads with "
                           f"weights_only=True ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CommandError(f"file: {path} holds a {type(state).__name__}, expected a state "
                           f"dict (or a dict with one under 'state_dict')")
    return state


def run(args):
    if os.path.exists(args.output) and not args.overwrite:
        raise CommandError(f"--output: {args.output} exists; give --overwrite to replace it")
    state = read_state_dict(args.file)
    model = build_model(args.model, args.dataset, seed=0, activation="relu", pool="max")
    try:
        model.load_torch_state_dict(state)
    except (ValueError, TypeError) as exc:
        raise CommandError(f"--model {args.model}: {exc}") from None
    channels = model.input_shape[0]
    for option, values, buffer in (("--mean", args.mean, "input_mean"),
                                   ("--std", args.std, "input_std")):
        if values is None:
            continue
        if len(values) != channels or not all(math.isfinite(v) for v in values) \
                or (option == "--std" and min(values) <= 0):
            raise CommandError(f"{option}: expected {channels} finite values (one per "
                               f"channel{', each > 0' if option == '--std' else ''}), got "
                               f"{' '.join(map(str, values))}")
        model.buffers()[buffer][...] = values
    save_checkpoint(args.output, model, meta={"settings": {
        "model": args.model, "dataset": args.dataset, "converted_from": args.file}})
    normalised = "then standardised with the given mean and std" if args.mean or args.std \
        else "and not standardised (give --mean and --std, or pass images normalised as the " \
             "PyTorch model's were)"
    print(f"{args.file} -> {args.output}: {model.name}, {model.num_params():,} parameters; "
          f"raw {args.dataset} images are scaled to [0, 1] {normalised}")
    return 0
