"""``python -m bench.micro``: the command; the code is bench.tools.micro."""
from bench.tools.micro import main

if __name__ == "__main__":
    raise SystemExit(main())
