"""peers_bench's timing: each call captured in a CUDA graph and replayed with the L2 flushed before every replay (the
median of the replays between CUDA events), and the GPU memory's streaming read and copy bandwidth."""

import statistics

try:
    import torch
except ImportError:  # reported by peers_bench.main(), which exits 0 as for a machine without a GPU
    torch = None

from peers_model import DEVICE  # (beside this file)

SLOW_CALL_US = 5000.0
SLOW_CALL_ITERS = 20
FLUSH_BYTES = 256 << 20
L2_FLUSHES = ("write", "read")


def capture(fn):
    """fn captured in a CUDA graph after one call on a side stream (capture needs its allocations warm); returns
    (graph, the output tensor the graph writes)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


class Timer:
    """Median µs of CUDA-graph replays, each after the L2 is flushed (outside the timed events): by writing a buffer
    of flush_bytes (FLUSH_BYTES unless given; l2_flush "write", which leaves L2 full of dirty lines the replay's reads
    evict to HBM) or by reading it ("read", the default: clean lines, as a decode step's earlier kernels mostly leave
    them; bench/NOTES.md §60). The read is torch's max, a kernel of enough code to clear the SMs' instruction caches
    of the layer's, as a model's other kernels do (§69); the write, a memset, leaves them holding it."""

    def __init__(self, iters, l2_flush="read", flush_bytes=FLUSH_BYTES):
        if l2_flush not in L2_FLUSHES:
            raise ValueError(f"l2_flush={l2_flush!r} must be one of {L2_FLUSHES}")
        self.iters = iters
        self.flush = torch.zeros(flush_bytes, dtype=torch.uint8, device=DEVICE)
        self.flush_l2 = self.flush.zero_ if l2_flush == "write" else self.flush.max

    def _replays_us(self, graph, count):
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(count)]
        for start, end in events:
            self.flush_l2()
            start.record()
            graph.replay()
            end.record()
        torch.cuda.synchronize()
        return [1e3 * start.elapsed_time(end) for start, end in events]

    def measure(self, fn):
        """(median µs, the graph's output after the last replay, replays timed)."""
        fn()  # eager first: JIT compilation and lazy module loading happen here, never inside a capture
        torch.cuda.synchronize()
        graph, out = capture(fn)
        probe = statistics.median(self._replays_us(graph, 3))
        iters = self.iters if probe < SLOW_CALL_US else min(self.iters, SLOW_CALL_ITERS)
        us = statistics.median(self._replays_us(graph, iters))
        return us, out, iters


def median_event_ms(op, repeats, warmup=1):
    """Median ms of `op` between CUDA events after `warmup` untimed calls (no graph of its own: `op` may replay one)."""
    for _ in range(warmup):
        op()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
    for start, end in events:
        start.record()
        op()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in events)


def measure_hbm(repeats=10):
    """(read GB/s, copy GB/s): a float16 sum over 2 GiB, and a 1 GiB device copy counting read + write."""
    def rates():
        data = torch.zeros(1 << 30, dtype=torch.float16, device=DEVICE)
        half = data.numel() // 2
        copy_out = torch.empty(half, dtype=torch.float16, device=DEVICE)
        read_ms = median_event_ms(lambda: data.sum(dtype=torch.float32), repeats)
        copy_ms = median_event_ms(lambda: copy_out.copy_(data[:half]), repeats)
        return data.numel() * 2 / (read_ms * 1e6), 2 * half * 2 / (copy_ms * 1e6)

    result = rates()
    torch.cuda.empty_cache()  # the 3 GiB of buffers go back before the models are made
    return result
