#!/usr/bin/env bash
# The performance checks for one GPU machine: about 8 minutes in all, or in two calls with ONLY=.
#
#   PYTHONPATH=. OUT=/path/to/out launch/gpu_check.sh            # on the GPU machine, from the repo root
#   OUT=/tmp/smoke launch/gpu_check.sh --cpu-smoke                 # the same pieces, tiny, on CPU
#   ONLY=resnet50 OUT=/path/to/out launch/gpu_check.sh            # only the pieces whose name starts so
#
# Pieces, each under its own time limit so one slow piece cannot eat the others' time: pieces 1-5 510 s
# in all (about 4-5 minutes expected), piece 6 420 s (about 3 minutes; run it alone with ONLY=resnet50
# where one call may last 10 minutes at most):
#   1. tests/test_gpu.py: k graph replays == k eager steps (running stats included), graph via bench.train;
#      tests/test_gpu_syncbn.py: scratch-sync == nn.SyncBatchNorm on CUDA tensors
#   2. bench.modes: eager vs graph examples/s, nn and scratch, batch 256 and 1024 (issue 7: graph/eager >= 3.5
#      for nn at 256)
#   3. bench.overhead: bare loop vs harness (budget 3 %), profiler configured vs off (budget 2 %), and the
#      bare loop with per-step timing marks; 5 rotated rounds
#   4. bench.micro: every shape in float32 and bfloat16, eager; then compiled rows for two shapes
#   5. analysis.render_micro: the README's micro-benchmark table and bar chart, into $OUT/report
#   6. resnet50_*: ResNet-50 on synthetic 224² images, bf16, channels_last, per-GPU batch 256, one rank, for
#      nn, scratch and scratch-sync, RESNET50_STEPS steps each (the first 7 profiled, 5 warm-up, the rest
#      timed); bench.micro's copy of each of ResNet-50's BN inputs at batch 256, bfloat16, channels_last;
#      then the report with the per-layer BN table (GB/s and × copy) into $OUT/resnet50_report
#      (docs/workloads.md). --cpu-smoke: nn only, 32² images, batch 2, the lenet micro rows as the copy.
# Everything printed is also in $OUT/<piece>.log; CSVs land in $OUT. DATA (default .gpu/data) holds
# Fashion-MNIST (FashionMNIST/raw/ or the four .gz files). The script never stops at a failed piece; its
# exit code is the number of pieces that failed.
set -uo pipefail
OUT="${OUT:-gpu_check_out}"
DATA="${DATA:-.gpu/data}"
PY="${PYTHON:-python}"
SMOKE=0
[[ "${1:-}" == "--cpu-smoke" ]] && SMOKE=1
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" KINETO_LOG_LEVEL=5
RESNET50_STEPS="${RESNET50_STEPS:-30}"
ONLY="${ONLY:-}"
failed=0

piece() {  # piece NAME LIMIT_S CMD...
  local name="$1" limit="$2"; shift 2
  if [[ -n "$ONLY" && "$name" != "$ONLY"* ]]; then echo "=== $name: skipped (ONLY=$ONLY)"; return; fi
  local t0=$SECONDS
  echo "=== $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" > >(tee "$OUT/$name.log") 2>&1
  local rc=$?
  echo "=== $name: rc $rc, $((SECONDS - t0)) s"
  [[ $rc -eq 0 ]] || failed=$((failed + 1))
}

if [[ $SMOKE -eq 1 ]]; then
  DEV=(--device cpu)
  piece modes 300 "$PY" -m bench.modes "${DEV[@]}" --data-dir "$DATA" --variants nn --batches 64 --modes eager \
    --epochs 1 --limit-train 1024 --limit-test 100 --out "$OUT/runs" --csv "$OUT/modes.csv"
  piece overhead 300 "$PY" -m bench.overhead "${DEV[@]}" --data-dir "$DATA" --batch-size 64 --epochs 1 \
    --limit-train 1024 --limit-test 100 --repeats 1 --csv "$OUT/overhead.csv"
  piece micro 300 "$PY" -m bench.micro "${DEV[@]}" --batch 4 --shapes lenet.bn3,lenet.bn1 --compile no \
    --reps 20 --out "$OUT/micro.csv"
  piece resnet50_nn 300 "$PY" -m bench.train "${DEV[@]}" --model resnet50 --data synthetic --image-size 32 \
    --synthetic-size 8 --batch-size 2 --steps 7 --epochs 1 --lr 0.01 --warmup-steps 0 --variant nn \
    --out "$OUT/resnet50" --overwrite
  piece resnet50_report 300 "$PY" -m analysis.report "$OUT/resnet50" -o "$OUT/resnet50_report" \
    --micro "$OUT/micro.csv"
else
  "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))'
  nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu --format=csv || true
  piece test_gpu 120 "$PY" -m pytest -q tests/test_gpu.py tests/test_gpu_syncbn.py
  piece modes 110 "$PY" -m bench.modes --data-dir "$DATA" --variants nn,scratch --batches 256,1024 \
    --modes eager,graph --epochs 2 --limit-test 1000 --out "$OUT/runs" --csv "$OUT/modes.csv"
  piece overhead 120 "$PY" -m bench.overhead --data-dir "$DATA" --variant nn --batch-size 256 --epochs 2 \
    --repeats 5 --csv "$OUT/overhead.csv"
  piece micro 60 "$PY" -m bench.micro --compile no --reps 30 --out "$OUT/micro.csv"
  piece micro_compiled 100 "$PY" -m bench.micro --compile only --shapes resnet50.layer1,lenet.bn1 --reps 30 \
    --out "$OUT/micro_compiled.csv"
  for v in nn scratch scratch-sync; do
    piece "resnet50_$v" 80 "$PY" -m bench.train --model resnet50 --data synthetic --amp bf16 --channels-last \
      --batch-size 256 --steps "$RESNET50_STEPS" --epochs 1 --lr 0.1 --variant "$v" --out "$OUT/resnet50" --overwrite
  done
  piece resnet50_micro 60 "$PY" -m bench.micro --shapes resnet50 --batch 256 --dtypes bfloat16 \
    --memory-formats channels_last --variants nn --compile no --reps 20 --out "$OUT/resnet50_micro.csv"
  piece resnet50_report 120 "$PY" -m analysis.report "$OUT/resnet50" -o "$OUT/resnet50_report" \
    --micro "$OUT/resnet50_micro.csv"
fi
micro_csvs=("$OUT/micro.csv")
[[ -f "$OUT/micro_compiled.csv" ]] && micro_csvs+=("$OUT/micro_compiled.csv")
[[ -f "$OUT/micro.csv" ]] && piece micro_report 60 "$PY" -m analysis.render_micro "${micro_csvs[@]}" --out "$OUT/report"
echo "=== gpu_check: $failed piece(s) failed; outputs in $OUT"
ls -l "$OUT"
exit "$failed"
