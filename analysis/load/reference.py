"""Published and previously measured numbers that the report shows beside this suite's own."""
from __future__ import annotations

import pandas as pd

# Published and previously measured numbers, shown beside this suite's own (examples/s on one device).
REFERENCE_ROWS = pd.DataFrame([
    {"source": "textbook (unnamed GPU)", "variant": "scratch", "train_loss": 0.277, "train_acc": 0.898,
     "test_acc": 0.835, "examples_per_s": 28009.9},
    {"source": "textbook (unnamed GPU)", "variant": "nn", "train_loss": 0.264, "train_acc": 0.902,
     "test_acc": 0.849, "examples_per_s": 44608.4},
    {"source": "textbook loop, H200", "variant": "scratch", "test_acc": 0.865, "examples_per_s": 56070.0},
    {"source": "textbook loop, H200", "variant": "nn", "test_acc": 0.865, "examples_per_s": 95066.0},
    {"source": "GPU-resident eager loop, H200", "variant": "scratch", "examples_per_s": 62773.0},
    {"source": "GPU-resident eager loop, H200", "variant": "nn", "examples_per_s": 116223.0},
])
