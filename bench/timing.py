"""``python -m bench.timing`` and ``torchrun -m bench.timing``: the command; the code is
bench.tools.interleave (its flags: bench.tools.timingcli)."""
import sys

from bench.tools.timingcli import main

if __name__ == "__main__":
    sys.exit(main())
