#!/usr/bin/env bash
# The GPU check of issue 35, one JSON out (docs/benchmarks.md, docs/training.md). Nothing is downloaded: the paper
# recipe's shapes with random weights. About 8 minutes on one H100.
#
#   benchmarks/gpu/check.sh [--dry-run] [--output FILE]      (default FILE: benchmarks/results/gpu-check.json)
#
# 1. training step time and peak memory, Whisper-large-v3 encoder + 80-query adapter + Qwen2.5-3B with LoRA, bf16:
#    one process, then FSDP2 on one GPU (torchrun, NCCL);
# 2. vLLM throughput at 30-s clips: llmsrt vs Qwen2-Audio at equal LLM size and at Qwen2-Audio-7B's own size.
# --dry-run: tiny shapes on the CPU (gloo), the same code paths; CI runs it (tests/test_gpu_check.py).
# PYTHON (default python3) runs the training parts, VLLM_PYTHON (default: PYTHON) the vLLM part.
set -uo pipefail
cd "$(dirname "$0")/../.."
shapes=paper
output=benchmarks/results/gpu-check.json
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) shapes=dry-run ;;
    --output) output="$2"; shift ;;
    *) echo "unknown option $1 (use --dry-run, --output FILE)" >&2; exit 2 ;;
  esac
  shift
done
PYTHON="${PYTHON:-python3}"
VLLM_PYTHON="${VLLM_PYTHON:-$PYTHON}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
parts="$(mktemp -d)"
check=benchmarks/gpu/check.py
status=0
"$PYTHON" "$check" train --shapes "$shapes" --output "$parts/train-single.json" || status=1
"$PYTHON" -m torch.distributed.run --nproc_per_node 1 --master_port "${CHECK_PORT:-29517}" "$check" train --fsdp \
  --shapes "$shapes" --output "$parts/train-fsdp.json" || status=1
"$VLLM_PYTHON" "$check" infer --shapes "$shapes" --output "$parts/infer.json" || status=1
"$PYTHON" "$check" combine "$parts/train-single.json" "$parts/train-fsdp.json" "$parts/infer.json" \
  --shapes "$shapes" --output "$output" || status=1
echo "wrote $output"
exit $status
