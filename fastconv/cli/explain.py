"""Walk through the lecture on convolutional networks: the 6x6 edge-detection example,
padding and stride, volumes, a small ConvNet, LeNet-5 and the cost of dense layers. Every
number is computed by fastconv as it is printed."""
import sys
from collections import namedtuple

import numpy as np

from ..conv import conv2d
from ..costs import compare_conv_dense
from ..filters import (HORIZONTAL_EDGE, LECTURE_IMAGE, SCHARR_VERTICAL, SOBEL_VERTICAL,
                       VERTICAL_EDGE)
from ..sizing import conv_output_size, conv_params, dense_params

#: One layer of a network summary: output volume (height, width, channels) and parameters.
Layer = namedtuple("Layer", "name description shape parameters")


def add_arguments(parser):
    parser.add_argument("--section", choices=tuple(SECTIONS), action="append",
                        help="show only this section (may be repeated); default: all")


def run(args):
    explain(args.section)
    return 0


def explain(sections=None, file=None):
    """Print the walkthrough (all sections, or the named ones) to file (stdout)."""
    out = file or sys.stdout
    for name in sections or SECTIONS:
        title, show = SECTIONS[name]
        print(f"== {title} ==", file=out)
        show(out)
        print(file=out)


# ---- helpers ----------------------------------------------------------------------------

def _correlate(image, kernel, **kwargs):
    """One image with one filter through fastconv.conv2d, integers back when exact."""
    y = conv2d(np.asarray(image)[None, None], np.asarray(kernel)[None, None], **kwargs)[0, 0]
    return y.astype(np.int64) if np.array_equal(y, np.round(y)) else y


def _grid(a):
    """Rows of a 2-D integer array, right-aligned to a common width."""
    width = max(len(str(v)) for v in a.ravel())
    return [" ".join(str(v).rjust(width) for v in row) for row in a]


def _side_by_side(titled_arrays, out, gap="    "):
    blocks = [[title] + _grid(a) for title, a in titled_arrays]
    widths = [max(len(line) for line in block) for block in blocks]
    for i in range(max(len(b) for b in blocks)):
        cells = [(b[i] if i < len(b) else "").ljust(w) for b, w in zip(blocks, widths)]
        print(gap.join(cells).rstrip(), file=out)


def _volume(shape):
    return f"{shape[0]:,}" if len(shape) == 1 else "x".join(str(n) for n in shape)


# ---- sections ---------------------------------------------------------------------------

def show_edges(out):
    y = _correlate(LECTURE_IMAGE, VERTICAL_EDGE)
    print("fastconv.conv2d slides the filter over the image and takes the elementwise "
          "product-sum\n(cross-correlation, as every deep-learning library does):", file=out)
    _side_by_side([("image 6x6", LECTURE_IMAGE), ("vertical edge filter", VERTICAL_EDGE),
                   (f"output {_volume(y.shape)}", y)], out)
    terms = " + ".join(f"{v}*{k}" if k >= 0 else f"{v}*({k})"
                       for v, k in zip(LECTURE_IMAGE[:3, :3].ravel(), VERTICAL_EDGE.ravel()))
    print(f"top-left: {terms} = {y[0, 0]}", file=out)
    flipped = _correlate(LECTURE_IMAGE, VERTICAL_EDGE, flip=True)
    print(f"true convolution (filter flipped, flip=True): first row {flipped[0].tolist()}",
          file=out)

    bright_left = np.array([[10, 10, 10, 0, 0, 0]] * 6)
    print("\nbright left half, dark right half: every output row is "
          f"{_correlate(bright_left, VERTICAL_EDGE)[0].tolist()} (a bright edge)", file=out)
    print("mirrored: every output row is "
          f"{_correlate(bright_left[:, ::-1], VERTICAL_EDGE)[0].tolist()} (a dark edge)",
          file=out)
    blocks = np.zeros((6, 6), dtype=np.int64)
    blocks[:3, :3] = 10
    blocks[3:, 3:] = 10
    print(file=out)
    _side_by_side([("image", blocks), ("horizontal filter", HORIZONTAL_EDGE),
                   ("output", _correlate(blocks, HORIZONTAL_EDGE))], out)
    print(file=out)
    _side_by_side([("Sobel (centre row weighs 2)", SOBEL_VERTICAL),
                   ("Scharr", SCHARR_VERTICAL)], out)
    print("In a CNN these nine numbers are learned, not hand-picked. fastconv.filters has "
          "Sobel,\nScharr, Prewitt and Canny for images.", file=out)


SIZE_EXAMPLES = [  # (n, f, p, s)
    (6, 3, 0, 1), (6, 3, 1, 1), (7, 3, 0, 2), (39, 3, 0, 1), (37, 5, 0, 2), (17, 5, 0, 2),
]


def show_sizes(out):
    print("output size = floor((n + 2p - f) / s) + 1   (fastconv.conv_output_size)", file=out)
    for n, f, p, s in SIZE_EXAMPLES:
        size = conv_output_size(n, f, stride=s, padding=p)
        note = "  'same'" if size == n else ""
        print(f"  n={n:<3} f={f} p={p} s={s} -> {size}{note}", file=out)
    print("'same' padding for an odd f and stride 1 is p = (f - 1) / 2.", file=out)


def show_volumes(out):
    x = np.zeros((1, 3, 7, 7))
    for filters in (1, 2):
        y = conv2d(x, np.zeros((filters, 3, 3, 3)))
        print(f"7x7x3 input, {filters} filter(s) of 3x3x3 -> "
              f"{_volume((y.shape[2], y.shape[3], y.shape[1]))}", file=out)
    print("The filter depth equals the input depth; the output depth equals the number of "
          "filters.", file=out)


def convnet_layers(input_shape=(39, 39, 3), convs=((3, 1, 10), (5, 2, 20), (5, 2, 40))):
    """The lecture's small ConvNet as Layer rows: each conv is (f, stride, filters)."""
    h, w, c = input_shape
    layers = [Layer("input", "", (h, w, c), 0)]
    for i, (f, s, k) in enumerate(convs, 1):
        h, w = conv_output_size(h, f, stride=s), conv_output_size(w, f, stride=s)
        layers.append(Layer(f"conv{i}", f"{f}x{f} s{s}, {k} filters", (h, w, k),
                            conv_params(f, c, k)))
        c = k
    layers.append(Layer("flatten", "-> softmax", (h * w * c,), 0))
    return layers


def lenet5_layers():
    """LeNet-5 as the lecture draws it (32x32x1 -> conv 5x5x6 -> pool -> conv 5x5x16 ->
    pool -> ...) as Layer rows, from the size and parameter formulas: the architecture,
    not a trained model."""
    h = w = 32
    c = 1
    layers = [Layer("input", "32x32x1 (MNIST 28x28 padded by 2)", (h, w, c), 0)]
    for name, kind, f, s, k in (("conv1", "conv", 5, 1, 6), ("pool1", "max pool", 2, 2, None),
                                ("conv2", "conv", 5, 1, 16), ("pool2", "max pool", 2, 2, None)):
        h, w = conv_output_size(h, f, stride=s), conv_output_size(w, f, stride=s)
        if kind == "conv":
            layers.append(Layer(name, f"{f}x{f}, {k} filters", (h, w, k), conv_params(f, c, k)))
            c = k
        else:
            layers.append(Layer(name, f"{f}x{f} stride {s}", (h, w, c), 0))
    n = h * w * c
    layers.append(Layer("flatten", "", (n,), 0))
    for name, units in (("fc1", 120), ("fc2", 84), ("fc3", 10)):
        layers.append(Layer(name, f"{units} units" + (", softmax" if units == 10 else ""),
                            (units,), dense_params(n, units)))
        n = units
    return layers


def _print_layers(layers, out):
    rows = [(lay.name, lay.description, _volume(lay.shape), f"{lay.parameters:,}")
            for lay in layers]
    rows.insert(0, ("layer", "", "output", "parameters"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  " + "  ".join((r[0].ljust(widths[0]), r[1].ljust(widths[1]),
                                r[2].rjust(widths[2]), r[3].rjust(widths[3]))), file=out)
    print(f"  total parameters: {sum(lay.parameters for lay in layers):,}", file=out)


def show_convnet(out):
    layers = convnet_layers()
    _print_layers(layers, out)
    print(f"  spatial size shrinks ({' -> '.join(str(lay.shape[0]) for lay in layers[:-1])}), "
          f"depth grows; {layers[-1].shape[0]:,} features feed the classifier", file=out)


def show_lenet5(out):
    _print_layers(lenet5_layers(), out)


def show_costs(out):
    n_in = 64 * 64 * 3
    print(f"64x64x3 image = {n_in:,} inputs; a dense layer of 1,000 units has "
          f"{dense_params(n_in, 1000, bias=False):,} weights "
          f"(+{dense_params(n_in, 1000) - dense_params(n_in, 1000, bias=False):,} biases)",
          file=out)
    big = 1000 * 1000 * 3
    print(f"1000x1000x3 image = {big:,} inputs -> {dense_params(big, 1000, bias=False):,} "
          f"weights ({dense_params(big, 1000, bias=False) / 1e9:g} billion)", file=out)
    print(f"ten 3x3 filters on an RGB input: (3*3*3 + 1) * 10 = {conv_params(3, 3, 10)} "
          "parameters, whatever the image size (parameter sharing)", file=out)
    print(file=out)
    print(compare_conv_dense((32, 32, 3), 6, 5), file=out)
    print("Why convs win: parameter sharing (one filter at every position) and sparse "
          "connections\n(each output sees only a small window).", file=out)


SECTIONS = {
    "edges": ("Edge detection with a filter", show_edges),
    "sizes": ("Padding, stride and output size", show_sizes),
    "volumes": ("Volumes: channels and many filters", show_volumes),
    "convnet": ("A small ConvNet", show_convnet),
    "lenet5": ("LeNet-5", show_lenet5),
    "costs": ("Conv layers vs fully connected layers", show_costs),
}
