"""``python -m bench.micro``: the command; the code is bench.tools.bn_microbench."""
from bench.tools.bn_microbench import main

if __name__ == "__main__":
    raise SystemExit(main())
