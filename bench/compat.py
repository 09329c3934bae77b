"""``python -m bench.compat``: the command; the code is bench.tools.compat."""
from bench.tools.compat import main

if __name__ == "__main__":
    raise SystemExit(main())
