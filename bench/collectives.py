"""``torchrun ... -m bench.collectives``: the command; the code is bench.tools.collective_bench."""
from bench.tools.collective_bench import main

if __name__ == "__main__":
    raise SystemExit(main())
