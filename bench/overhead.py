"""``python -m bench.overhead``: the command; the code is bench.tools.overhead."""
from bench.tools.overhead import main

if __name__ == "__main__":
    raise SystemExit(main())
