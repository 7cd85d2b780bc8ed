#!/usr/bin/env python3
"""Turns a w4a8moe_gemm_bench or w4a8moe_moe_bench JSON file into the markdown committed under bench/results/.

    python3 bench/report.py bench/results/2026-11-26-h100-80gb-hbm3.json > bench/results/2026-11-26-h100-80gb-hbm3.md
    python3 bench/report.py --layer bench/results/2026-11-26-h100-80gb-hbm3-moe-layer.json   # the layer table

The targets these results are held to: bench/criteria.py.
"""
import json
import sys
from collections import OrderedDict

from peers_report import flush_words  # (beside this file) the results' words for flushes


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
    if "note" in data:  # a file merged from two runs says which rows came from which
        print(f"Note: {data['note']}.\n")
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
        swept = len({r["method"] for r in w4a8_all}) > 1  # without --sweep only the naive config is there
        best_w4a8 = min(w4a8_all, key=lambda r: r["us"]) if swept else None
        naive = next((r for r in rows if r["method"] == "w4a8_128x16_1x1_coop"), None)
        print(f"| {model} | {gemm} | {tokens} | {routing} | {main_row['n']} x {main_row['k']} | "
              f"{main_row['active_experts']}/{main_row['experts']} | {main_row['config']} | {us:.1f} | "
              f"{main_row['tflops']:.0f} | {main_row['weight_gbps']:.0f} | {100 * main_row['weight_gbps'] / hbm:.0f} | "
              f"{naive['us'] / us:.2f} | {ratio(best(rows, 'w8a8'))} | {ratio(best(rows, 'w4a16'))} | "
              f"{ratio(best(rows, 'bf16'))} | "
              f"{best_label(best_w4a8)} |")


def both(row, key):
    """One path's total where the benchmark timed both (files from before carry neither)."""
    return f"{row[key]:.1f}" if row.get(key, 0) > 0 else "-"


def layer(path):
    """The layer benchmark as a table, with each case's time over the time to read its active experts once."""
    data = json.load(open(path))
    stages = list(data["rows"][0]["stages_us"])
    print(f"# The fused W4A8 MoE layer on {data['device']}\n")
    if "note" in data:
        print(f"Note: {data['note']}.\n")
    print(f"CUDA graph replays; streaming read measured in the same run: {data['hbm_read_gbps']:.0f} GB/s. \"read "
          "once\" is the time to read the active experts' int4 weights, one byte per group scale (MXFP4: per 32 "
          "weights) and the channel scales of both GEMMs at that bandwidth. The W8A8 pipeline is this layer with its "
          "two GEMM stages replaced by the best W8A8 grouped GEMMs, timed standalone on the same routing.\n")
    if "l2_flush" in data:
        print(f"Before each replay the L2 {flush_words(data['l2_flush'], data.get('instruction_caches_flushed'))}.\n")
    print("Up to 8 tokens both paths are timed in the same process: \"staged\" (the stages' launches) and \"1 launch\" "
          "(the whole layer in one cooperative launch); \"total\" is the one MoePath::kAuto picks. The stage times "
          "are always the staged path's.\n")
    # Files with several packed layouts (moe_bench --layouts, gpt-oss's MXFP4) name each row's; the W8A8 pipeline is
    # timed for the lookup-table layout only.
    layouts = any("layout" in r for r in data["rows"])
    print("| model | " + ("layout | " if layouts else "") + "tokens | " + " | ".join(stages) +
          " | total us | staged us | 1 launch us | launches | active experts | read once us | total / read once "
          "| W8A8 pipeline / W4A8 |")
    print("|---|---|" + ("---|" if layouts else "") + "---|" * len(stages) + "---|---|---|---|---|---|---|---|")
    for r in data["rows"]:
        # An idle expert-parallel rank reads nothing: no ratio.
        ratio = f"{r['total_graph_us'] / r['read_once_us']:.2f}" if r["read_once_us"] > 0 else "-"
        lookup = r.get("layout", "lookup") == "lookup"
        w8a8 = f"{r['w8a8_pipeline_us'] / r['total_graph_us']:.2f}" if lookup else "-"
        print(f"| {r['model']} | " + (f"{r.get('layout', 'lookup')} | " if layouts else "") + f"{r['tokens']} | " +
              " | ".join(f"{r['stages_us'][s]:.1f}" for s in stages) +
              f" | {r['total_graph_us']:.1f} | {both(r, 'staged_total_graph_us')} | {both(r, 'one_launch_total_graph_us')}"
              f" | {r['launches']} | {r['active_experts']} | {r['read_once_us']:.1f} "
              f"| {ratio} | {w8a8} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--layer":
        layer(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
