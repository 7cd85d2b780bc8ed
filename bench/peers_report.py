#!/usr/bin/env python3
"""Markdown tables of a bench/peers_bench.py result: w4a8moe beside vLLM 0.24.0's MoE kernels.

    python3 bench/peers_report.py RESULT.json > RESULT.md

The layer table gives, per model and token count, each method's median time (µs) and "fastest vLLM / ours": the
fastest of the three vLLM kernels divided by w4a8moe's time (below 1, in bold: a vLLM kernel is faster). The GEMM
tables do the same for each grouped GEMM alone; the error table gives ||out - ref|| / ||ref|| against the fp32
reference of the dequantised weights. peers_bench.py writes this markdown itself; this script remakes it from the
JSON. Standard library only.
"""

import json
import sys

OURS = "w4a8moe"
OURS_EXACT = "w4a8moe_exact"  # the same library on the exact-scale packed layout
VLLM_METHODS = ("vllm_cutlass_w4a8", "vllm_marlin_w4a16", "vllm_marlin_w4a8_int8")
METHODS = (OURS, OURS_EXACT) + VLLM_METHODS
METHOD_TITLES = {
    OURS: "w4a8moe",
    OURS_EXACT: "w4a8moe, exact layout",
    "vllm_cutlass_w4a8": "vLLM CUTLASS W4A8",
    "vllm_marlin_w4a16": "Marlin W4A16",
    "vllm_marlin_w4a8_int8": "Marlin W4A8-INT8",
}
MODEL_TITLES = {
    "qwen3-30b-a3b": "Qwen3-30B-A3B",
    "mixtral-8x7b": "Mixtral-8x7B",
    "deepseek-v3-ep8": "DeepSeek-V3, 1 of 8 EP ranks",
}
LEVEL_TITLES = {
    "layer": "Layer: hidden states + router logits -> output",
    "gemm1": "GEMM1 alone (gate + up), rows grouped by expert",
    "gemm2": "GEMM2 alone (down), rows grouped by expert",
}


def _cases(rows, level):
    """{(model, tokens): {method: row}} for one level, in the order the rows were written."""
    cases = {}
    for row in rows:
        if row["level"] == level:
            cases.setdefault((row["model"], row["tokens"]), {})[row["method"]] = row
    return cases


def _timed(row):
    return row is not None and row.get("us") is not None and not row.get("error")


def _time_cell(row):
    if row is None:
        return "-"
    if row.get("skipped"):
        return "skipped"
    if not _timed(row):
        return "error"
    return f"{row['us']:.1f}"


def _ratio_cell(by_method, ours_method=OURS):
    """Fastest vLLM time / ours, bold below 1 (a vLLM kernel is faster)."""
    ours = by_method.get(ours_method)
    peers = [by_method[m]["us"] for m in VLLM_METHODS if _timed(by_method.get(m))]
    if not _timed(ours) or not peers:
        return "-"
    ratio = min(peers) / ours["us"]
    return f"**{ratio:.2f}**" if ratio < 1 else f"{ratio:.2f}"


def _first(by_method, key):
    """A per-case value every method's row carries (active experts, rows, read once), from the first that has it;
    "-" if none has it."""
    for row in by_method.values():
        if row.get(key) is not None:
            return row[key]
    return "-"


def _table(header, lines):
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                     ["| " + " | ".join(str(cell) for cell in line) + " |" for line in lines])


RATIO_TITLES = ["fastest vLLM / ours", "fastest vLLM / ours, exact"]


def _ratio_cells(by_method):
    return [_ratio_cell(by_method, OURS), _ratio_cell(by_method, OURS_EXACT)]


def layer_table(rows):
    header = ["model", "tokens", "active experts", "read once"] + [METHOD_TITLES[m] for m in METHODS] + RATIO_TITLES
    lines = []
    for (model, tokens), by_method in _cases(rows, "layer").items():
        read_once = _first(by_method, "read_once_us")
        lines.append([MODEL_TITLES.get(model, model), tokens, _first(by_method, "active_experts"),
                      read_once if read_once == "-" else f"{read_once:.1f}"] +
                     [_time_cell(by_method.get(m)) for m in METHODS] + _ratio_cells(by_method))
    return _table(header, lines)


def gemm_table(rows, level):
    header = ["model", "tokens", "rows"] + [METHOD_TITLES[m] for m in METHODS] + RATIO_TITLES
    lines = []
    for (model, tokens), by_method in _cases(rows, level).items():
        lines.append([MODEL_TITLES.get(model, model), tokens, _first(by_method, "rows")] +
                     [_time_cell(by_method.get(m)) for m in METHODS] + _ratio_cells(by_method))
    return _table(header, lines)


def error_table(rows):
    header = ["model", "tokens", "level"] + [METHOD_TITLES[m] for m in METHODS]
    lines = []
    for level in LEVEL_TITLES:
        for (model, tokens), by_method in _cases(rows, level).items():
            cells = []
            for method in METHODS:
                row = by_method.get(method)
                cells.append(f"{100 * row['rel_err']:.2f}" if _timed(row) and row.get("rel_err") is not None
                             else "-")
            lines.append([MODEL_TITLES.get(model, model), tokens, level] + cells)
    return _table(header, lines)


def failures(rows):
    """One line per row that has no time, with the first line of its message."""
    def reason(row):
        if row.get("skipped"):
            return f"skipped: {row['skipped']}"
        return str(row.get("error") or "no time").splitlines()[0]

    return [f"- {row['model']}, {row['tokens']} tokens, {row['level']}, {row['method']}: {reason(row)}"
            for row in rows if not _timed(row)]


def render(result):
    """The whole markdown file for one run."""
    parts = [f"# w4a8moe beside vLLM 0.24.0's MoE kernels on {result['device']}", ""]
    facts = []
    if result.get("date"):
        facts.append(f"Run {result['date']}")
    if result.get("torch"):
        facts.append(f"torch {result['torch']}, CUDA {result.get('cuda')}")
    if result.get("hbm_read_gbps"):
        facts.append(f"streaming read measured in the same run: {result['hbm_read_gbps']:.0f} GB/s")
    if facts:
        parts += ["; ".join(facts) + ".", ""]
    parts += [
        "One process, the same weights (one compressed-tensors int4 checkpoint, group 128, converted the way vLLM's "
        "loader does) and the same inputs for every method. Median µs of CUDA-graph replays with the L2 flushed "
        "before each. \"fastest vLLM / ours\": the fastest vLLM kernel's time over w4a8moe's (below 1, in bold: "
        "a vLLM kernel is faster); \"exact\": the same for w4a8moe on the exact-scale packed layout "
        "(prepack_weights(..., layout=\"exact\")). \"read once\": µs to read the active experts' int4 weights, one "
        "byte per group scale and 4 bytes per channel scale once at the measured bandwidth. Marlin W4A8-INT8 "
        "applies the input global scale of its int8 weight scales.",
        "",
        f"## {LEVEL_TITLES['layer']}", "", layer_table(result["rows"]), "",
        f"## {LEVEL_TITLES['gemm1']}", "", gemm_table(result["rows"], "gemm1"), "",
        f"## {LEVEL_TITLES['gemm2']}", "", gemm_table(result["rows"], "gemm2"), "",
        "## Relative error, % (||out - ref|| / ||ref||, fp32 reference of the dequantised int4 weights)", "",
        "Layer: against the fp32 layer on the same top-k routing (a sample of up to 128 tokens). GEMMs: against "
        "fp32 products of each method's own (dequantised) input rows, a sample of up to 512 rows.", "",
        error_table(result["rows"]), "",
    ]
    failed = failures(result["rows"])
    if failed:
        parts += ["## Rows without a time", ""] + failed + [""]
    return "\n".join(parts)


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        print(render(json.load(f)))


if __name__ == "__main__":
    main(sys.argv)
