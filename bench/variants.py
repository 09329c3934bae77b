"""``python -m bench.variants``: the command; the code is bench.tools.variant_list."""
from bench.tools.variant_list import main

if __name__ == "__main__":
    raise SystemExit(main())
