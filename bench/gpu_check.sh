#!/usr/bin/env bash
# The GPU check: the CUDA-marked tests, then extraction (AMP, pinned memory, decode workers), training and
# beam-search throughput on CUDA, then the README's demo through Hydra with device=cuda. Prints every number;
# about 6 minutes on one H100 (each step has a limit).
# `bash bench/gpu_check.sh tests beam large-demo` runs only the steps named (tests, extraction, extraction-fp32,
# training, beam, demo; large-demo, the 300-video demo in about 3 minutes, runs only when named).
#
#   here, once (pip reaches PyPI):  bash bench/gpu_check.sh wheels
#       puts the packages the GPU image lacks (nltk and its defusedxml; decord, the second video backend;
#       hydra-core, omegaconf and antlr4's runtime, built here: PyPI has no wheel of 4.9.3) into .whl/ (15 MB)
#   on the GPU machine (the device tool's run, from the repository root):
#       command: bash bench/gpu_check.sh      carry: [".whl"]      timeout_s: 600
#       The log is also written to $OUT/gpu_check.log when OUT is set.
#
# The image has python3.12 with torch, torchvision, opencv-python-headless, numpy, pytest, tqdm and
# matplotlib, but no decord, nltk, hydra-core or omegaconf.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [[ "${1:-}" == wheels ]]; then
    platforms=()
    for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux2010_x86_64 manylinux1_x86_64; do
        platforms+=(--platform "$p")
    done
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d .whl nltk==3.10.4 defusedxml==0.7.1 decord==0.6.0 hydra-core==1.3.8 omegaconf==2.3.1 \
        && exec "$PY" -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3
fi

if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check: installing the carried wheels failed"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
[[ -n "${OUT:-}" ]] && exec > >(tee "$OUT/gpu_check.log") 2>&1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" - <<'EOF' || exit 1
import sys
import torch, torchvision, cv2, numpy
missing = [m for m in ("nltk", "decord", "hydra") if __import__("importlib").util.find_spec(m) is None]
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"opencv {cv2.__version__}, numpy {numpy.__version__}, CUDA available: {torch.cuda.is_available()}")
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device")
if "nltk" in missing or "hydra" in missing:
    sys.exit("gpu_check: nltk or hydra is missing: run 'bash bench/gpu_check.sh wheels' here and carry .whl")
if missing:
    print("gpu_check: decord is missing: the OpenCV backend only")
EOF

status=0
only=" ${*:-tests extraction extraction-fp32 training beam demo} "
step() {  # step NAME SECONDS COMMAND...: if asked for, run with a time limit, note failures, go on
    local name=$1 limit=$2
    shift 2
    [[ "$only" == *" $name "* ]] || return 0
    echo
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - start))s"
    [[ $rc -ne 0 ]] && status=1
}

step tests 60 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/test_gpu.py
step extraction 200 "$PY" bench/extract.py --device cuda --models resnet18 resnet50 --videos-at 640x480 1280x720 \
    --videos 8 --seconds 3 --repeats 2 --workers 12 --batch 64
step extraction-fp32 45 "$PY" bench/extract.py --device cuda --models resnet50 --videos-at 640x480 \
    --videos 8 --seconds 3 --repeats 1 --workers 12 --batch 64 --no-amp
step training 60 "$PY" bench/train_throughput.py --device cuda
step beam 25 "$PY" bench/decode.py --device cuda --videos 512 --batch 64
step demo 90 "$PY" -m pipelines.demo device=cuda output_dir=/tmp/gpu_demo quiet=true
step large-demo 240 "$PY" -m pipelines.demo device=cuda demo.size=large output_dir=/tmp/gpu_demo_large quiet=true
echo
echo "gpu_check: total $((SECONDS))s, $([[ $status -eq 0 ]] && echo "all steps passed" || echo "SOME STEPS FAILED")"
exit $status
