"""File writing shared by the datasets' downloads and the checkpoints."""
import os
import tempfile


def write_atomic(path, data):
    """Write `data` (bytes, or a function that writes to the open binary file it is given)
    to `path` so it is complete or absent: a temporary file in the same folder, flushed and
    fsync'ed, then renamed over `path` (os.replace is atomic)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
