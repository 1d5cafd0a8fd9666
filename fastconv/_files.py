"""File writing shared by the datasets' downloads and the checkpoints."""
import os
import tempfile


def current_umask():
    """The process's umask. Linux reports it in /proc/self/status; elsewhere os.umask is
    the only way to read it, by setting it and putting it back at once (the stand-in
    0o077, most private, is what a file created meanwhile by another thread gets)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write_atomic(path, data):
    """Write `data` (bytes, or a function that writes to the open binary file it is given)
    to `path` so it is complete or absent: a temporary file in the same folder, flushed and
    fsync'ed, then renamed over `path` (os.replace is atomic). The file gets the mode
    open() would give it, 0o666 less the umask (mkstemp makes its files 0o600)."""
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
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
