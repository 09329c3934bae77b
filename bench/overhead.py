"""``python -m bench.overhead``: the command; the code is bench.tools.overhead_measure."""
from bench.tools.overhead_measure import main

if __name__ == "__main__":
    raise SystemExit(main())
