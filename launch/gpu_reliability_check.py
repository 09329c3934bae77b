"""GPU checks of the README's "When things go wrong" section: --deterministic repeats,
kill-and-resume equality, divergence step on CUDA, and the divergence guard's cost (check every
50 steps vs only at epoch ends).

    OUT=/tmp/out python launch/gpu_reliability_check.py /usr/share/datasets/fashion-mnist

Prints and writes $OUT/gpu_check.json. About 2-3 minutes on one H100/H200.
"""
import csv, json, os, signal, subprocess, sys, time
from pathlib import Path
OUT = Path(os.environ["OUT"]); RUNS = OUT / "runs"
HERE = Path(__file__).resolve().parent.parent
DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist")
ENV = {**os.environ, "PYTHONPATH": str(HERE), "KINETO_LOG_LEVEL": "5"}
BASE = ["--data-dir", "/tmp/fm", "--out", str(RUNS), "--no-profile", "--batch-size", "256",
        "--limit-train", "20000", "--limit-test", "2000", "--epochs", "3"]
import shutil; os.makedirs("/tmp/fm", exist_ok=True)
for f in DATA.iterdir(): shutil.copy(f, "/tmp/fm/" + f.name)
res = {}
def run(name, *flags, bg=False):
    cmd = [sys.executable, "-m", "bench.train", *BASE, "--run-name", name, *flags]
    if bg: return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t = time.time(); p = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    res[name] = {"rc": p.returncode, "wall_s": round(time.time() - t, 1), "err": p.stderr[-600:]}
    return p.returncode
def rows(name):
    with open(RUNS / name / "metrics.csv") as f:
        return [(r["train_loss"], r["train_acc"], r["test_acc"]) for r in csv.DictReader(f)]
def summ(name): return json.loads((RUNS / name / "summary.json").read_text())
for v in ("nn",):
    run(f"det-{v}-a", "--variant", v, "--deterministic"); run(f"det-{v}-b", "--variant", v, "--deterministic")
    res[f"det-{v}-equal"] = rows(f"det-{v}-a") == rows(f"det-{v}-b")
    run(f"nd-{v}-a", "--variant", v); run(f"nd-{v}-b", "--variant", v)
    res[f"nd-{v}-rows"] = [rows(f"nd-{v}-a"), rows(f"nd-{v}-b")]
    res[f"det-{v}-rows"] = rows(f"det-{v}-a")
# kill after epoch 1 checkpoint, resume
p = run("cut", "--variant", "nn", "--deterministic", bg=True)
while not (RUNS / "cut" / "checkpoint.pt").exists() and p.poll() is None: time.sleep(0.005)
p.send_signal(signal.SIGKILL); p.wait()
res["cut-killed-rc"] = p.returncode
res["cut-status-after-kill"] = summ("cut")["status"]
run("cut-resume", "--variant", "nn", "--deterministic", "--resume", str(RUNS / "cut"))
res["resume-summary"] = {k: summ("cut").get(k) for k in ("status", "resumed_from_epoch", "epochs")}
res["resume-equal-det"] = rows("cut") == rows("det-nn-a")
# divergence on CUDA: default check every 50 vs every step
run("div50", "--lr", "1e36"); run("div1", "--lr", "1e36", "--check-finite-every", "1")
res["div"] = [{k: summ(n).get(k) for k in ("status", "diverged_epoch", "diverged_step", "diverged_loss")} for n in ("div50", "div1")]
# guard overhead: full train set, 2 epochs, check every 50 (default) vs only at epoch ends
full = ["--limit-train", "60000", "--limit-test", "10000", "--epochs", "2"]
for rep in range(1):
    for name, ev in (("g50", "50"), ("g1e9", "1000000000")):
        run(f"{name}-{rep}", *full, "--check-finite-every", ev)
        res[f"{name}-{rep}-eps"] = summ(f"{name}-{rep}")["examples_per_s"]
        res[f"{name}-{rep}-p50"] = summ(f"{name}-{rep}")["step_ms_p50"]
(OUT / "gpu_check.json").write_text(json.dumps(res, indent=1))
print(json.dumps(res, indent=1))
