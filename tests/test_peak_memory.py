"""benchmarks/peak_memory.py on the CPU: malloc's bytes in use (what benchmarks/planner_memory.py compares llmsrt-plan
with) see a tensor allocated and freed inside the block, and fall back when it is freed."""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from peak_memory import PeakMemory, heap_in_use  # noqa: E402

MIB = 2**20


def test_heap_in_use_counts_a_cpu_tensor_until_it_is_freed():
    before = heap_in_use()
    tensor = torch.ones(64 * MIB // 4)  # 64 MiB of fp32
    held = heap_in_use()
    del tensor
    after = heap_in_use()
    assert 64 * MIB <= held - before < 66 * MIB
    assert abs(after - before) < 2 * MIB


def test_peak_of_the_heap_sees_buffers_freed_inside_the_block():
    """Buffers of 24 MiB allocated and freed one after the other (as FSDP's all-gathers are): the peak is one or two
    of them, never their sum, and nothing is left when the block ends."""
    start = heap_in_use()
    with PeakMemory("cpu", interval=0.001, heap=True) as peak:
        for _ in range(8):
            buffer = torch.ones(24 * MIB // 4)
            time.sleep(0.01)  # held long enough for the sampling thread to see it
            del buffer
    assert 23 / 1024 < peak.gib < 3 * 24 / 1024
    assert abs(heap_in_use() - start) < 2 * MIB
