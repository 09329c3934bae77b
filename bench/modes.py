"""``python -m bench.modes``: the command; the code is bench.tools.mode_compare."""
from bench.tools.mode_compare import main

if __name__ == "__main__":
    raise SystemExit(main())
