"""Peak memory of a block of code, for the benchmarks' tables.

On a GPU: the CUDA allocator's peak during the block. On the CPU: the peak resident set size of the process,
sampled every 2 ms by a background thread, minus the resident size at entry (what the block itself added).
"""

import threading

import psutil
import torch


class PeakMemory:
    """`with PeakMemory(device) as peak: ...` then `peak.gib`."""

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.002):
        self.device, self.interval, self.gib = torch.device(device), interval, float("nan")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._process = psutil.Process()
        self._start = self._peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.gib = torch.cuda.max_memory_allocated(self.device) / 2**30
            return False
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)
        self.gib = (self._peak - self._start) / 2**30
        return False
