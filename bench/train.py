"""``python -m bench.train`` and ``torchrun -m bench.train``: the command; the code is bench.run.train."""
from bench.run.train import main

if __name__ == "__main__":
    raise SystemExit(main())
