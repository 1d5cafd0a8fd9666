"""``python -m fastconv COMMAND [...]``: the same program as the installed ``fastconv``."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
