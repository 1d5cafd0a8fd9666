"""PNG figures of a training run, drawn with matplotlib when it is installed.

Each function returns True when it wrote the file and False when matplotlib is missing
(it is an optional extra: ``pip install "fastconv[examples]"``). Figures are drawn with
matplotlib's object API on an Agg canvas, so no global pyplot state or display is used.
"""
import numpy as np

__all__ = ["have_matplotlib", "plot_history", "plot_filters", "filters_figure", "plot_confusion"]


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    """Write the finished figure as a PNG; True, what every plot_* returns when it wrote."""
    fig.tight_layout()
    fig.savefig(path)
    return True


def plot_history(history, path):
    """Loss and accuracy per epoch, training and validation, side by side."""
    if not have_matplotlib():
        return False
    fig = _figure(10, 4)
    epochs = history["epoch"]
    for ax, key, title in ((fig.add_subplot(1, 2, 1), "loss", "cross-entropy loss"),
                           (fig.add_subplot(1, 2, 2), "accuracy", "accuracy")):
        ax.plot(epochs, history[key], "o-", label="training")
        val = history.get("val_" + key) or []
        if any(v is not None for v in val):
            ax.plot(epochs, val, "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_filters(weight, path, title="conv1 filters (learned)"):
    """The first conv layer's filters (K, 1, f, f) as small images (see filters_figure)."""
    if not have_matplotlib():
        return False
    return _save(filters_figure(weight, title), path)


def filters_figure(weight, title="conv1 filters (learned)"):
    """The figure of plot_filters. A weight's sign matters as much as its size, so the
    colours diverge from white at 0 (red positive, blue negative) on one scale symmetric
    about 0 for all filters, and a colour bar gives the values."""
    weight = np.asarray(weight)
    count = weight.shape[0]
    fig = _figure(1.6 * count + 1.0, 2.2)
    limit = float(np.abs(weight).max()) or 1.0
    grid = fig.add_gridspec(1, count + 1, width_ratios=[1] * count + [0.1])
    for k in range(count):
        ax = fig.add_subplot(grid[0, k])
        image = ax.imshow(weight[k, 0], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"filter {k}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, cax=fig.add_subplot(grid[0, count]), label="weight")
    fig.suptitle(title)
    return fig


def plot_confusion(counts, path, title="confusion matrix (validation)"):
    """counts[i, j] = images of class i predicted as j, with the counts written in."""
    if not have_matplotlib():
        return False
    counts = np.asarray(counts)
    fig = _figure(6.5, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax)
    classes = range(counts.shape[0])
    ax.set_xticks(list(classes))
    ax.set_yticks(list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = counts.max() / 2 if counts.size else 0
    for i in classes:
        for j in classes:
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if counts[i, j] > threshold else "black")
    return _save(fig, path)
