"""``torchrun ... -m bench.collectives``: the command; the code is bench.tools.collectives."""
from bench.tools.collectives import main

if __name__ == "__main__":
    raise SystemExit(main())
