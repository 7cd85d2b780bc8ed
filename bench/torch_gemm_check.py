"""Outside check of the C++ benchmark's baselines: PyTorch's own grouped GEMMs on the same shapes and routing.

    w8a8  torch._scaled_grouped_mm: fp8 e4m3 weights with per-channel scales, per-token fp8 activations, fast
          accumulation (the CUTLASS pointer-array family the C++ W8A8 baseline uses)
    bf16  torch._grouped_mm

For each (model, GEMM, tokens) case the rows are routed uniformly at random (top-k distinct experts per token; for
DeepSeek-V3 the 32 local experts of an 8-way expert-parallel rank), and the time is the median over CUDA graph
replays of launches that rotate through enough weight copies that nothing is served from L2, as in
w4a8moe_gemm_bench. With --compare, the C++ benchmark's JSON of the same card gives the ratios
torch / C++ for both baselines (near 1: the C++ baselines are what PyTorch users get).

    python3 bench/torch_gemm_check.py [--tokens 16 128 8192] [--compare bench/results/<date>-<card>.json]
"""

import argparse
import json
import math
import statistics

import torch

MODELS = {  # global experts, local experts, top-k, hidden, inter
    "qwen3-30b-a3b": (128, 128, 8, 2048, 768),
    "deepseek-v3-ep8": (256, 32, 8, 7168, 2048),
    "mixtral-8x7b": (8, 8, 2, 4096, 14336),
}


def routing_counts(global_experts, local_experts, top_k, tokens, generator):
    scores = torch.rand(tokens, global_experts, generator=generator)
    chosen = scores.topk(top_k, dim=1).indices.flatten()  # top_k distinct uniform experts per token
    return torch.bincount(chosen, minlength=global_experts)[:local_experts]


def time_graph(launch, copies, replays=20):
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for i in range(copies):
            launch(i)  # warm-up, outside the graph
        per_graph = max(copies, math.ceil(8 / copies) * copies)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            for i in range(per_graph):
                launch(i % copies)
        for _ in range(3):
            graph.replay()
        times = []
        for _ in range(replays):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            graph.replay()
            stop.record(stream)
            stop.synchronize()
            times.append(1e3 * start.elapsed_time(stop) / per_graph)
    return statistics.median(times)


def run_case(n, k, counts, l2_bytes):
    rows = int(counts.sum())
    experts = counts.numel()
    offsets = counts.cumsum(0).to(torch.int32).cuda()
    active = int((counts > 0).sum())
    results = {}
    for kind in ("w8a8", "bf16"):
        weight_bytes = n * k * (1 if kind == "w8a8" else 2)
        copies = max(1, min(16, math.ceil(3 * l2_bytes / max(1, active * weight_bytes)),
                            int(8e9 // (experts * weight_bytes))))
        if kind == "w8a8":
            act = torch.randn(rows, k, device="cuda").to(torch.float8_e4m3fn)
            act_scale = torch.rand(rows, device="cuda") * 0.01
            weights = [torch.randn(experts, n, k, device="cuda").to(torch.float8_e4m3fn).transpose(1, 2)
                       for _ in range(copies)]  # [E, K, N] column-major
            scales = torch.rand(experts, n, device="cuda") * 0.01

            def launch(i):
                torch._scaled_grouped_mm(act, weights[i], act_scale, scales, offs=offsets, out_dtype=torch.bfloat16,
                                         use_fast_accum=True)
        else:
            act = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
            weights = [torch.randn(experts, n, k, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
                       for _ in range(copies)]

            def launch(i):
                torch._grouped_mm(act, weights[i], offs=offsets)
        results[kind] = time_graph(launch, copies)
        del weights
        torch.cuda.empty_cache()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 128, 8192])
    parser.add_argument("--compare", help="w4a8moe_gemm_bench JSON of the same card, for torch / C++ ratios")
    args = parser.parse_args()
    props = torch.cuda.get_device_properties(0)
    cpp = {}
    if args.compare:
        data = json.load(open(args.compare))
        for r in data["rows"]:
            if r["routing"] != "uniform" or r["us"] <= 0:
                continue
            family = "w8a8" if r["method"].startswith("w8a8") else "bf16" if r["method"].startswith("bf16") else None
            if family:
                key = (r["model"], r["gemm"], r["tokens"], family)
                cpp[key] = min(cpp.get(key, float("inf")), r["us"])
    print(f"device: {props.name}; torch {torch.__version__}")
    print(f"{'model':16} {'gemm':>4} {'tokens':>6} | {'torch w8a8 us':>13} {'/C++':>6} | {'torch bf16 us':>13} {'/C++':>6}")
    generator = torch.Generator().manual_seed(0)
    for model in args.models:
        global_experts, local_experts, top_k, hidden, inter = MODELS[model]
        for tokens in args.tokens:
            counts = routing_counts(global_experts, local_experts, top_k, tokens, generator)
            for gemm, (n, k) in ((1, (2 * inter, hidden)), (2, (hidden, inter))):
                t = run_case(n, k, counts, props.L2_cache_size)
                ratio = {f: t[f] / cpp[(model, gemm, tokens, f)] if (model, gemm, tokens, f) in cpp else float("nan")
                         for f in t}
                print(f"{model:16} {gemm:>4} {tokens:>6} | {t['w8a8']:13.1f} {ratio['w8a8']:6.2f} | "
                      f"{t['bf16']:13.1f} {ratio['bf16']:6.2f}", flush=True)


if __name__ == "__main__":
    main()
