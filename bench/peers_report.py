#!/usr/bin/env python3
"""Markdown tables of a bench/peers_bench.py result: w4a8moe beside vLLM 0.24.0's MoE kernels.

    python3 bench/peers_report.py RESULT.json > RESULT.md

The layer table gives, per model and token count, each method's median time (µs) and "fastest vLLM / ours": the
fastest of the three vLLM int4 kernels divided by w4a8moe's time (below 1, in bold: a vLLM kernel is faster). The GEMM
tables do the same for each grouped GEMM alone; the error table gives ||out - ref|| / ||ref|| against the fp32
reference of the dequantised weights. Models with MXFP4 experts (gpt-oss) get tables of their own, with their
methods as columns: w4a8moe and vLLM's Marlin MXFP4, and "Marlin MXFP4 / ours". peers_bench.py writes this markdown
itself; this script remakes it from the JSON. Standard library only.
"""

import json
import re
import sys
from dataclasses import dataclass

OURS = "w4a8moe"
OURS_EXACT = "w4a8moe_exact"  # the same library on the exact-scale packed layout
VLLM_METHODS = ("vllm_cutlass_w4a8", "vllm_marlin_w4a16", "vllm_marlin_w4a8_int8")
METHODS = (OURS, OURS_EXACT) + VLLM_METHODS
MARLIN_MXFP4 = "vllm_marlin_mxfp4"
# How the timings left L2 before each replay (the JSON's "l2_flush"; files from before the option wrote).
L2_FLUSH_WORDS = {"write": "flushed by writing", "read": "flushed by reading", "none": "not flushed"}


def flush_words(l2_flush, instruction_caches_flushed=False):
    """How a layer benchmark's timings left the caches before each replay, as the tables say it: its L2 flush, and
    whether the SMs' instruction caches were cleared too (the JSON's "instruction_caches_flushed", bench/NOTES.md
    §69)."""
    code = " and the SMs' instruction caches cleared" if instruction_caches_flushed else ""
    return L2_FLUSH_WORDS.get(l2_flush, l2_flush) + code


def card_name(device_name):
    """The card as results' file names spell it: "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3"."""
    return re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")


METHOD_TITLES = {
    OURS: "w4a8moe",
    OURS_EXACT: "w4a8moe, exact layout",
    "vllm_cutlass_w4a8": "vLLM CUTLASS W4A8",
    "vllm_marlin_w4a16": "Marlin W4A16",
    "vllm_marlin_w4a8_int8": "Marlin W4A8-INT8",
    MARLIN_MXFP4: "Marlin MXFP4",
}
MODEL_TITLES = {
    "qwen3-30b-a3b": "Qwen3-30B-A3B",
    "mixtral-8x7b": "Mixtral-8x7B",
    "deepseek-v3-ep8": "DeepSeek-V3, 1 of 8 EP ranks",
    "gpt-oss-120b": "gpt-oss-120b",
}


@dataclass(frozen=True)
class WeightFormat:
    """The rows of one checkpoint format (a row's "weights"), and the columns its tables have."""
    name: str
    title: str  # the caption above its tables where a run has more than one format
    methods: tuple  # the time and error columns, in order
    peers: tuple  # the vLLM methods a ratio takes the fastest of
    ratios: tuple  # (our method, column title) for each ratio column


FORMATS = (
    WeightFormat("int4", "int4 experts (compressed-tensors, group 128)", METHODS, VLLM_METHODS,
                 ((OURS, "fastest vLLM / ours"), (OURS_EXACT, "fastest vLLM / ours, exact"))),
    WeightFormat("mxfp4", "MXFP4 experts (gpt-oss: e2m1 codes, an e8m0 scale per 32 inputs, expert biases)",
                 (OURS, MARLIN_MXFP4), (MARLIN_MXFP4,), ((OURS, "Marlin MXFP4 / ours"),)),
)
LEVEL_TITLES = {
    "layer": "Layer: hidden states + router logits -> output",
    "gemm1": "GEMM1 alone (gate + up), rows grouped by expert",
    "gemm2": "GEMM2 alone (down), rows grouped by expert",
}


def _format_of(row):
    return row.get("weights", "int4")  # results written before MXFP4 models existed are all int4


def _by_format(rows, table):
    """table(rows of one format, its WeightFormat) for each format the rows have; with more than one, each under its
    caption. An int4-only run reads as before."""
    present = [f for f in FORMATS if any(_format_of(row) == f.name for row in rows)] or [FORMATS[0]]
    if len(present) == 1:
        return table([row for row in rows if _format_of(row) == present[0].name], present[0])
    return "\n\n".join(f"### {fmt.title}\n\n" + table([row for row in rows if _format_of(row) == fmt.name], fmt)
                        for fmt in present)


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


def _ratio_cell(by_method, ours_method=OURS, peer_methods=VLLM_METHODS):
    """Fastest vLLM time / ours, bold below 1 (a vLLM kernel is faster)."""
    ours = by_method.get(ours_method)
    peers = [by_method[m]["us"] for m in peer_methods if _timed(by_method.get(m))]
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


def _ratio_titles(fmt):
    return [title for _, title in fmt.ratios]


def _ratio_cells(by_method, fmt):
    return [_ratio_cell(by_method, ours, fmt.peers) for ours, _ in fmt.ratios]


def _method_titles(fmt):
    return [METHOD_TITLES[m] for m in fmt.methods]


def _layer_table(rows, fmt):
    header = ["model", "tokens", "active experts", "read once"] + _method_titles(fmt) + _ratio_titles(fmt)
    lines = []
    for (model, tokens), by_method in _cases(rows, "layer").items():
        read_once = _first(by_method, "read_once_us")
        lines.append([MODEL_TITLES.get(model, model), tokens, _first(by_method, "active_experts"),
                      read_once if read_once == "-" else f"{read_once:.1f}"] +
                     [_time_cell(by_method.get(m)) for m in fmt.methods] + _ratio_cells(by_method, fmt))
    return _table(header, lines)


def _gemm_table(rows, fmt, level):
    header = ["model", "tokens", "rows"] + _method_titles(fmt) + _ratio_titles(fmt)
    lines = []
    for (model, tokens), by_method in _cases(rows, level).items():
        lines.append([MODEL_TITLES.get(model, model), tokens, _first(by_method, "rows")] +
                     [_time_cell(by_method.get(m)) for m in fmt.methods] + _ratio_cells(by_method, fmt))
    return _table(header, lines)


def _error_table(rows, fmt):
    header = ["model", "tokens", "level"] + _method_titles(fmt)
    lines = []
    for level in LEVEL_TITLES:
        for (model, tokens), by_method in _cases(rows, level).items():
            cells = []
            for method in fmt.methods:
                row = by_method.get(method)
                cells.append(f"{100 * row['rel_err']:.2f}" if _timed(row) and row.get("rel_err") is not None
                             else "-")
            lines.append([MODEL_TITLES.get(model, model), tokens, level] + cells)
    return _table(header, lines)


def layer_table(rows):
    """The layer's times, one table per weight format in the rows."""
    return _by_format(rows, _layer_table)


def gemm_table(rows, level):
    return _by_format(rows, lambda format_rows, fmt: _gemm_table(format_rows, fmt, level))


def error_table(rows):
    return _by_format(rows, _error_table)


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
    formats = {_format_of(row) for row in result["rows"]} or {"int4"}
    how = L2_FLUSH_WORDS.get(result.get("l2_flush", "write"), "flushed")
    if result.get("l2_flush") == "read":  # torch's max kernel: bench/NOTES.md §69
        how += " (torch's max over the buffer, whose code also clears the layer's from the SMs' instruction caches)"
    path = "" if result.get("path", "auto") == "auto" else f" Our layers forced onto the {result['path']} path."
    parts += ["One process, the same weights and the same inputs for every method of a model. Median µs of "
              f"CUDA-graph replays with the L2 {how} before each.{path}", ""]
    if "int4" in formats:
        parts += [
            "int4 models: one compressed-tensors int4 checkpoint, group 128, converted the way vLLM's loader does. "
            "\"fastest vLLM / ours\": the fastest vLLM kernel's time over w4a8moe's (below 1, in bold: a vLLM kernel "
            "is faster); \"exact\": the same for w4a8moe on the exact-scale packed layout (prepack_weights(..., "
            "layout=\"exact\")). \"read once\": µs to read the active experts' int4 weights, one byte per group "
            "scale and 4 bytes per channel scale once at the measured bandwidth. Marlin W4A8-INT8 applies the input "
            "global scale of its int8 weight scales.",
            "",
        ]
    if "mxfp4" in formats:
        parts += [
            "MXFP4 models (gpt-oss): one gpt-oss checkpoint (e2m1 codes, an e8m0 scale per 32 inputs, bf16 expert "
            "biases, GEMM1's gate and up rows interleaved) for both methods, with gpt-oss's clamped SwiGLU. "
            "w4a8moe: its \"mxfp4\" layout, fp8 per-token activations. Marlin MXFP4: vLLM's MXFP4 Marlin backend, "
            "bf16 activations, H and I padded to multiples of 256 and 128 as vLLM allocates them (gpt-oss: 3072 and "
            "2944). \"Marlin MXFP4 / ours\": Marlin's time over w4a8moe's (below 1, in bold: Marlin is faster); "
            "\"read once\": the active experts' e2m1 codes (0.5 byte a weight), one e8m0 byte per 32 weights and "
            "the bf16 biases at the measured bandwidth.",
            "",
        ]
    parts += [
        f"## {LEVEL_TITLES['layer']}", "", layer_table(result["rows"]), "",
        f"## {LEVEL_TITLES['gemm1']}", "", gemm_table(result["rows"], "gemm1"), "",
        f"## {LEVEL_TITLES['gemm2']}", "", gemm_table(result["rows"], "gemm2"), "",
        "## Relative error, % (||out - ref|| / ||ref||, fp32 reference of the dequantised weights)", "",
        "Layer: against the fp32 layer on the same top-k routing (a sample of up to 128 tokens). GEMMs: against "
        "fp32 products of each method's own (dequantised) input rows, a sample of up to 512 rows (with the biases "
        "for MXFP4 models).", "",
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
