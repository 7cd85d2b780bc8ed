#!/usr/bin/env python3
"""Turns a w4a8moe_gemm_bench JSON file into the markdown table committed under bench/results/.

    python3 bench/report.py bench/results/2026-11-26-h100-80gb-hbm3.json > bench/results/2026-11-26-h100-80gb-hbm3.md
"""
import json
import sys
from collections import OrderedDict


def best(rows, prefix):
    timed = [r for r in rows if r["method"].startswith(prefix) and r["us"] > 0]
    return min(timed, key=lambda r: r["us"]) if timed else None


def best_label(row):
    return f"{row['config']} ({row['us']:.1f} us)" if row else "-"


def main(path):
    data = json.load(open(path))
    hbm = data["hbm_read_gbps"]
    cases = OrderedDict()
    for r in data["rows"]:
        cases.setdefault((r["model"], r["gemm"], r["routing"], r["tokens"]), []).append(r)
    print(f"# W4A8 grouped GEMM on {data['device']} ({data['sm_count']} SMs)\n")
    print(f"Streaming read bandwidth measured in the same run: {hbm:.0f} GB/s. Times are medians of CUDA-graph "
          "replays with weights rotated out of L2. Ratios are baseline time / W4A8 time (above 1: W4A8 is faster). "
          "Effective bandwidth counts the weights and scales of the experts that received rows, as each method "
          "stores them.\n")
    print("| model | GEMM | tokens | routing | N x K | active experts | W4A8 config | W4A8 us | TFLOP/s | GB/s | % HBM "
          "| naive 128x16 | W8A8 best | W4A16 best | BF16 cuBLAS | best W4A8 config |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (model, gemm, routing, tokens), rows in cases.items():
        main_row = next((r for r in rows if r["method"] == "w4a8"), None)
        if main_row is None or main_row["us"] <= 0:
            continue
        us = main_row["us"]

        def ratio(row):
            return f"{row['us'] / us:.2f} ({row['config']})" if row else "-"

        w4a8_all = [r for r in rows if r["method"].startswith("w4a8_") and r["us"] > 0]
        best_w4a8 = min(w4a8_all, key=lambda r: r["us"]) if w4a8_all else None
        naive = next((r for r in rows if r["method"] == "w4a8_128x16_1x1_coop"), None)
        print(f"| {model} | {gemm} | {tokens} | {routing} | {main_row['n']} x {main_row['k']} | "
              f"{main_row['active_experts']}/{main_row['experts']} | {main_row['config']} | {us:.1f} | "
              f"{main_row['tflops']:.0f} | {main_row['weight_gbps']:.0f} | {100 * main_row['weight_gbps'] / hbm:.0f} | "
              f"{naive['us'] / us:.2f} | {ratio(best(rows, 'w8a8'))} | {ratio(best(rows, 'w4a16'))} | "
              f"{ratio(best(rows, 'bf16'))} | "
              f"{best_label(best_w4a8)} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
