#!/usr/bin/env bash
# The performance checks for one GPU machine, in pieces.
#
#   PYTHONPATH=. OUT=/path/to/out devtools/gpu_check.sh                      # every piece (over 10 minutes)
#   PYTHONPATH=. OUT=/path/to/out devtools/gpu_check.sh test_gpu modes overhead micro micro_compiled fused micro_report
#   PYTHONPATH=. OUT=/path/to/out devtools/gpu_check.sh resnet50 collectives  # a second call
#   OUT=/tmp/smoke devtools/gpu_check.sh --cpu-smoke                          # the same pieces, tiny, on CPU
#
# Name pieces to run only those (a name also selects every piece it begins, so `resnet50` runs all
# resnet50_* pieces). Each piece has its own time limit so one slow piece cannot eat the others' time;
# the limits add up to more than 10 minutes, so where a job is limited to 10 minutes run the two
# calls above (about 8 and 5 minutes).
#   test_gpu        tests/test_gpu.py: k graph replays == k eager steps (running stats included), graph
#                   via bench.train; tests/test_gpu_syncbn.py: scratch-sync == nn.SyncBatchNorm on CUDA
#   modes           bench.modes: eager vs graph examples/s, nn and scratch, batch 256 and 1024
#   overhead        bench.overhead: bare loop vs harness (budget 3 %), profiler configured vs off (budget
#                   2 %), and the bare loop with per-step timing marks; 5 rotated rounds
#   micro           bench.micro: every shape in float32 and bfloat16, eager, scratch, nn and fused
#   micro_compiled  bench.micro: compiled rows of scratch and nn for two shapes
#   fused           devtools.gpu_fused_check: the fused kernels against nn.BatchNorm2d, then their times
#                   against a copy and docs/fused.md's targets, into $OUT/gpu_fused.csv
#   micro_report    analysis.micro_table: the micro-benchmark table (fastest marked) and bar chart
#   resnet50_*      ResNet-50 on synthetic 224² images, bf16, channels_last, per-GPU batch 256, one rank,
#                   nn, scratch and scratch-sync, RESNET50_STEPS steps each (the first 7 profiled, 5
#                   warm-up, the rest timed); bench.micro's copy of each ResNet-50 BN input; the report
#                   with the per-layer BN table (GB/s and × copy) in $OUT/resnet50_report (docs/workloads.md)
#   collectives     bench.collectives: NCCL on one rank (the per-call latency floor) and gloo on two ranks
#                   sharing the GPU, 4 B to 64 MiB and the BN shapes of lenet, resnet18 and resnet50
# Everything printed is also in $OUT/<piece>.log; CSVs land in $OUT. DATA (default .gpu/data) holds
# Fashion-MNIST (FashionMNIST/raw/ or the four .gz files). The script never stops at a failed piece; its
# exit code is the number of pieces that failed (2 for an unknown piece name, before any runs).
set -uo pipefail
OUT="${OUT:-gpu_check_out}"
DATA="${DATA:-.gpu/data}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" launcher=gpu_check.sh
. "$repo/launch/python.sh"  # $PYTHON, else the repository's .venv, else python3
PY="$py"
RESNET50_STEPS="${RESNET50_STEPS:-30}"
PIECES=" test_gpu modes overhead micro micro_compiled fused micro_report resnet50 collectives "
SMOKE=0
ONLY=()
for arg in "$@"; do
  if [[ "$arg" == "--cpu-smoke" ]]; then SMOKE=1
  elif [[ "$PIECES" == *" $arg "* ]]; then ONLY+=("$arg")
  else echo "gpu_check.sh: error: unknown piece '$arg': choose from$PIECES(or --cpu-smoke)" >&2; exit 2
  fi
done
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
failed=0

chosen() {  # chosen NAME: no piece was named, or NAME begins with one that was
  [[ ${#ONLY[@]} -eq 0 ]] && return 0
  local want
  for want in "${ONLY[@]}"; do [[ "$1" == "$want"* ]] && return 0; done
  return 1
}

piece() {  # piece NAME LIMIT_S CMD...
  local name="$1" limit="$2"; shift 2
  chosen "$name" || return 0
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
  # fused is skipped on CPU (its kernels need CUDA, or the interpreter, too slow for a smoke)
  piece micro 300 "$PY" -m bench.micro "${DEV[@]}" --batch 4 --shapes lenet.bn3,lenet.bn1 --compile no \
    --reps 20 --out "$OUT/micro.csv"
  piece fused 60 "$PY" -m devtools.gpu_fused_check "$OUT/gpu_fused.csv"  # says "skipped: no CUDA device"
  piece resnet50_nn 300 "$PY" -m bench.train "${DEV[@]}" --model resnet50 --data synthetic --image-size 32 \
    --synthetic-size 8 --batch-size 2 --steps 7 --epochs 1 --lr 0.01 --warmup-steps 0 --variant nn \
    --diverge-above off --out "$OUT/resnet50" --overwrite  # 2 random-label images a step: the loss explodes
  piece resnet50_report 300 "$PY" -m analysis.report "$OUT/resnet50" -o "$OUT/resnet50_report" \
    --micro "$OUT/micro.csv"
  # one gloo rank, a few sizes (tests/test_scale.py runs two ranks)
  piece collectives 120 "$PY" -m bench.collectives --device cpu --sizes 4,1K --bn-models lenet --iters 5 \
    --out "$OUT/collectives_gloo_ws1.csv"
else
  "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))'
  nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu --format=csv || true
  piece test_gpu 120 "$PY" -m pytest -q tests/test_gpu.py tests/test_gpu_syncbn.py
  piece modes 110 "$PY" -m bench.modes --data-dir "$DATA" --variants nn,scratch --batches 256,1024 \
    --modes eager,graph --epochs 2 --limit-test 1000 --out "$OUT/runs" --csv "$OUT/modes.csv"
  piece overhead 120 "$PY" -m bench.overhead --data-dir "$DATA" --variant nn --batch-size 256 --epochs 2 \
    --repeats 5 --csv "$OUT/overhead.csv"
  piece micro 150 "$PY" -m bench.micro --compile no --variants scratch,nn,fused --reps 30 --out "$OUT/micro.csv"
  piece micro_compiled 100 "$PY" -m bench.micro --compile only --variants scratch,nn \
    --shapes resnet50.layer1,lenet.bn1 --reps 30 --out "$OUT/micro_compiled.csv"
  piece fused 180 "$PY" -m devtools.gpu_fused_check "$OUT/gpu_fused.csv"
  for v in nn scratch scratch-sync; do
    piece "resnet50_$v" 80 "$PY" -m bench.train --model resnet50 --data synthetic --amp bf16 --channels-last \
      --batch-size 256 --steps "$RESNET50_STEPS" --epochs 1 --lr 0.1 --variant "$v" --out "$OUT/resnet50" --overwrite
  done
  piece resnet50_micro 60 "$PY" -m bench.micro --shapes resnet50 --batch 256 --dtypes bfloat16 \
    --memory-formats channels_last --variants nn --compile no --reps 20 --out "$OUT/resnet50_micro.csv"
  piece resnet50_report 120 "$PY" -m analysis.report "$OUT/resnet50" -o "$OUT/resnet50_report" \
    --micro "$OUT/resnet50_micro.csv"
  piece collectives 130 bash -c "'$PY' -m bench.collectives --backend nccl --out '$OUT/collectives_nccl_ws1.csv' && \
    '$PY' -m torch.distributed.run --standalone --nproc_per_node=2 -m bench.collectives --backend gloo \
    --device cuda --max-bytes 16M --out '$OUT/collectives_gloo_ws2.csv'"
fi
micro_csvs=()
for f in "$OUT/micro.csv" "$OUT/micro_compiled.csv"; do [[ -f "$f" ]] && micro_csvs+=("$f"); done
if [[ ${#micro_csvs[@]} -gt 0 ]]; then
  piece micro_report 60 "$PY" -m analysis.micro_table "${micro_csvs[@]}" --out "$OUT/report"
fi
echo "=== gpu_check: $failed piece(s) failed; outputs in $OUT"
ls -l "$OUT"
exit "$failed"
