"""fastconv: 2-D convolution, pooling and a LeNet-5 trainer on NumPy arrays, with C/OpenMP
kernels.

Quick tour::

    import numpy as np, fastconv
    x = np.random.rand(8, 3, 32, 32).astype(np.float32)
    w = np.random.rand(6, 3, 5, 5).astype(np.float32)
    y = fastconv.conv2d(x, w, padding=2)                       # (8, 6, 32, 32)
    gx, gw, gb = fastconv.conv2d_backward(np.ones_like(y), x, w, padding=2)
    edges = fastconv.filters.sobel(x[0, 0])                    # gradient magnitude
    print(fastconv.compare_conv_dense((32, 32, 3), 6, 5))      # conv vs dense costs

The package: the operations here (conv2d, pooling, matmul, sizes and costs, config,
``fastconv.reference`` as plain loops, ``fastconv.filters``); ``fastconv.nn`` layers,
models, losses, optimizers, training and checkpoints; ``fastconv.data`` datasets and
preprocessing; ``fastconv.cli`` the command-line programs; ``fastconv.dask`` (the ``dask``
extra, imported on its own) the operations on dask arrays.
"""
__version__ = "0.2.0"

try:
    from . import _ext
except ImportError as exc:  # pragma: no cover - only when the C extension is not built
    raise ImportError(
        "fastconv's compiled extension (fastconv._ext) is missing. Install the package with "
        "'pip install .' and run Python from outside the source tree, or build it in place "
        "with 'python setup.py build_ext --inplace'.") from exc

from . import config as _config
from .config import get_num_threads, get_simd, set_num_threads, set_simd, show_config
from .autotune import get_autotune, set_autotune
from .conv import conv2d, conv2d_backward
from .plan import ConvPlan, conv_plan
from .linalg import matmul
from .pooling import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d,
                      avg_pool2d_backward, global_avg_pool2d, global_avg_pool2d_backward,
                      max_pool2d, max_pool2d_backward)
from .sizing import conv_output_size, conv_params, dense_params
from .costs import compare_conv_dense
from . import filters
from . import data, nn

_config._init_simd_from_env()
_config._bound_threads_from_env()

__all__ = [
    "conv2d", "conv2d_backward", "conv_plan", "ConvPlan", "matmul",
    "conv_output_size", "conv_params", "dense_params", "compare_conv_dense",
    "filters", "data", "nn",
    "show_config", "set_num_threads", "get_num_threads", "set_simd", "get_simd",
    "set_autotune", "get_autotune",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward",
]
