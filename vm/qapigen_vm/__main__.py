"""`python -m qapigen_vm`: the `qapigen-vm` command (qemu-system-x86_64's command line)."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
