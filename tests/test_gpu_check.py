"""benchmarks/gpu/check.sh --dry-run: the GPU check's code paths on the CPU (tiny shapes, gloo), one JSON out."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_dry_run_measures_training_single_and_fsdp(tmp_path):
    output = tmp_path / "gpu-check.json"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "CHECK_PORT": "29531"}
    result = subprocess.run([str(ROOT / "benchmarks" / "gpu" / "check.sh"), "--dry-run", "--output", str(output)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    check = json.loads(output.read_text())
    assert check["shapes"] == "dry-run" and check["failed_parts"] == []
    train = {part["mode"]: part for part in check["parts"] if part["part"] == "train"}
    assert train["single"]["sharding"] is None and train["fsdp2"]["sharding"] == "fsdp"
    for part in train.values():
        assert part["step_seconds_median"] > 0 and part["peak_memory_gib"] > 0 and part["steps_timed"] == 2
        assert len(part["losses"]) == 3
    # one process at the same batch: FSDP2 trains alike
    assert train["fsdp2"]["losses"] == pytest.approx(train["single"]["losses"], rel=1e-4)
    infer = next(part for part in check["parts"] if part["part"] == "infer")
    try:
        import vllm  # noqa: F401
    except ImportError:
        assert infer["skipped"].startswith("vLLM is not importable here")
    else:
        assert {row["engine"] for row in infer["rows"]} == {"llmsrt", "qwen2audio-equal-llm", "qwen2audio-own-size"}
        assert all(row["clips_per_second"] > 0 for row in infer["rows"])
