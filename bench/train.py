"""``python -m bench.train`` and ``torchrun -m bench.train``: the command; the code is bench.run.runner."""
from bench.run.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
