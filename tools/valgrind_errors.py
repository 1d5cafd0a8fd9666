"""Summarise valgrind memcheck logs: errors whose stack reaches fastconv's extension, and
the others (CPython and glibc are not memcheck-clean; their reports are counted apart).

    python tools/valgrind_errors.py LOG [LOG ...]     # exit status 1 if fastconv has any
"""
import re
import sys

KINDS = re.compile(r"(Invalid (read|write|free)|Conditional jump|Use of uninitialised|"
                   r"Syscall param|Mismatched free|Source and destination overlap|"
                   r"Argument .* of function)")
# A frame of ours: a C kernel (fc_...), Cython glue (__pyx...), or a line of src/ or _ext.
OURS = re.compile(r"\b(fc_\w+|__pyx\w+)\b|\((conv_\w+|gemm\w*|filter2d\w*|canny\w*|"
                  r"config|_ext)\.(c|h)|fastconv/_ext\.cpython")


def error_blocks(lines):
    """Each error: its first line and its stack frames."""
    blocks, current = [], None
    for line in lines:
        match = re.match(r"==\d+== (.*)$", line)
        if not match:
            continue
        body = match.group(1)
        if KINDS.match(body):
            current = [body]
            blocks.append(current)
        elif current is not None and body.startswith(" "):
            current.append(body.strip())
        elif not body:
            current = None
    return blocks


def main(paths):
    ours, foreign = [], []
    for path in paths:
        with open(path, errors="replace") as f:
            for block in error_blocks(f):
                frames = [l for l in block[1:] if l.startswith(("at ", "by "))][:6]
                (ours if any(OURS.search(fr) for fr in frames) else foreign).append(block)
    for block in ours:
        print("\n  ".join(block[:16]), end="\n\n")
    print(f"valgrind: {len(ours)} error contexts in fastconv, {len(foreign)} elsewhere "
          f"(CPython, glibc, NumPy)")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
