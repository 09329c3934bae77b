"""``python -m bench.variants``: the command; the code is bench.tools.variants."""
from bench.tools.variants import main

if __name__ == "__main__":
    raise SystemExit(main())
