"""``python -m bench.compat``: the command; the code is bench.tools.compatmatrix.build."""
from bench.tools.compatmatrix.build import main

if __name__ == "__main__":
    raise SystemExit(main())
