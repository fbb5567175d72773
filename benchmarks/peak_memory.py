"""Peak memory of a block of code, for the benchmarks' tables.

On a GPU: the CUDA allocator's peak during the block. On the CPU: the peak resident set size of the process,
sampled every 2 ms by a background thread, minus the resident size at entry (what the block itself added); or, with
`heap=True`, the same of the bytes glibc's malloc has handed out and not yet been given back (`heap_in_use`).

The resident size overstates what a block holds when it frees and allocates large buffers again and again (FSDP's
all-gathers): glibc keeps freed memory in its arenas (and raises its mmap threshold after each freed mmapped block,
so later blocks up to 32 MiB come from the arenas too) instead of returning it to the system. Measured on the demo
model under FSDP2 (2 gloo processes): after a forward pass the resident size was 4.82 GiB, malloc's bytes in use
2.97 GiB; `malloc_trim` brought the resident size down to 3.40 GiB (the rest: code, libraries, Python).
"""

import ctypes
import threading

import psutil
import torch


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def heap_in_use() -> int:
    """Bytes glibc's malloc has handed out and not had back, over all its arenas (`mallinfo2`: `uordblks`, in the
    arenas, plus `hblkhd`, in mmapped blocks). CPU tensors are allocated through malloc, so this counts them."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


class PeakMemory:
    """`with PeakMemory(device) as peak: ...` then `peak.gib` (CPU: of the resident size, or with `heap=True` of
    `heap_in_use()`)."""

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.002, heap: bool = False):
        self.device, self.interval, self.gib = torch.device(device), interval, float("nan")
        self.heap = heap

    def _now(self) -> int:
        return heap_in_use() if self.heap else self._process.memory_info().rss

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._process = psutil.Process()
        self._start = self._peak = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._now())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.gib = torch.cuda.max_memory_allocated(self.device) / 2**30
            return False
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._now())
        self.gib = (self._peak - self._start) / 2**30
        return False
