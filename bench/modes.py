"""``python -m bench.modes``: the command; the code is bench.tools.modes."""
from bench.tools.modes import main

if __name__ == "__main__":
    raise SystemExit(main())
