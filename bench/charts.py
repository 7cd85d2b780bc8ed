#!/usr/bin/env python3
"""PNG charts from the benchmark JSON of one run, written next to it (needs matplotlib):

    python3 bench/charts.py bench/results/2026-12-02-nvidia-h200
    python3 bench/charts.py bench/results/2026-12-03-nvidia-h200-peers-middle-batches.json ...

The first form reads <prefix>-peers.json, <prefix>.json (GEMM benchmark) and <prefix>-moe-layer.json, whichever
exist, and writes <prefix>-peers-layer.png (the layer's time against tokens beside vLLM's kernels and the
read-once time), <prefix>-gemm-hbm.png (the W4A8 GEMMs' bandwidth as % of the measured read bandwidth) and
<prefix>-layer-stages.png (the layer's stage times as shares, the default packed layout's where both were run).
The second draws each named file's chart (told by its rows) into the same name with .png."""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODELS = ["qwen3-30b-a3b", "deepseek-v3-ep8", "mixtral-8x7b"]
METHODS = {  # peers method -> label, style
    "w4a8moe": ("w4a8moe (W4A8)", dict(color="black", marker="o", linewidth=2)),
    "w4a8moe_exact": ("w4a8moe (W4A8, exact layout)", dict(color="black", marker="D", linestyle="--")),
    "vllm_marlin_w4a16": ("vLLM Marlin W4A16", dict(color="tab:blue", marker="s")),
    "vllm_marlin_w4a8_int8": ("vLLM Marlin W4A8-INT8", dict(color="tab:green", marker="^")),
    "vllm_cutlass_w4a8": ("vLLM CUTLASS W4A8", dict(color="tab:orange", marker="v")),
}


def load(path):
    return json.load(open(path)) if os.path.exists(path) else None


def peers_layer(data, out):
    fig, axes = plt.subplots(1, len(MODELS), figsize=(15, 4.2))
    for ax, model in zip(axes, MODELS):
        rows = [r for r in data["rows"] if r["model"] == model and r["level"] == "layer"]
        for method, (label, style) in METHODS.items():
            points = sorted((r["tokens"], r["us"]) for r in rows if r["method"] == method)
            if points:
                ax.plot(*zip(*points), label=label, **style)
        read_once = sorted({(r["tokens"], r["read_once_us"]) for r in rows if r.get("read_once_us")})
        if read_once:
            ax.plot(*zip(*read_once), label="read once", color="gray", linestyle="--")
        ax.set(title=model, xscale="log", yscale="log", xlabel="tokens", ylabel="layer time (us)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"MoE layer on {data['device']}: CUDA graphs, L2 flushed before each replay")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def gemm_hbm(data, out):
    hbm = data["hbm_read_gbps"]
    fig, axes = plt.subplots(1, len(MODELS), figsize=(15, 4.2), sharey=True)
    for ax, model in zip(axes, MODELS):
        for gemm, color in ((1, "tab:red"), (2, "tab:purple")):
            for routing, style in (("uniform", "-"), ("skewed", ":")):
                points = sorted((r["tokens"], 100 * r["weight_gbps"] / hbm) for r in data["rows"]
                                if r["model"] == model and r["gemm"] == gemm and r["routing"] == routing
                                and r["method"] == "w4a8")
                if points:
                    ax.plot(*zip(*points), color=color, linestyle=style, marker=".",
                            label=f"GEMM{gemm}, {routing} routing")
        ax.set(title=model, xscale="log", xlabel="tokens", ylim=(0, 100))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("% of measured HBM read bandwidth")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"W4A8 grouped GEMMs (heuristic's config) on {data['device']}: bytes as packed / time")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def layer_stages(data, out):
    layout = data["rows"][0].get("layout", "lookup")
    data = dict(data, rows=[r for r in data["rows"] if r.get("layout", "lookup") == layout])
    models = [m for m in MODELS if any(r["model"] == m for r in data["rows"])]
    fig, axes = plt.subplots(1, len(models), figsize=(15, 4.2))
    stages = list(data["rows"][0]["stages_us"])
    colors = plt.cm.tab10.colors
    for ax, model in zip(axes, models):
        rows = sorted((r for r in data["rows"] if r["model"] == model), key=lambda r: r["tokens"])
        labels = [str(r["tokens"]) for r in rows]
        bottom = [0.0] * len(rows)
        # Shares of the stages' sum: each stage is timed between events, which stop the launches from overlapping,
        # so the stages add up to more than the graph's total.
        for i, stage in enumerate(stages):
            share = [100 * r["stages_us"][stage] / sum(r["stages_us"].values()) for r in rows]
            ax.bar(labels, share, bottom=bottom, color=colors[i], label=stage)
            bottom = [b + s for b, s in zip(bottom, share)]
        ax.set(title=model, xlabel="tokens", ylim=(0, 100))
    axes[0].set_ylabel("% of the stages' time")
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"MoE layer stages on {data['device']}, {layout} layout (CUDA graph replays, each stage between "
                 "events)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def chart_of(data):
    """The chart a benchmark JSON's rows call for."""
    row = data["rows"][0]
    return peers_layer if "level" in row else layer_stages if "stages_us" in row else gemm_hbm


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    wrote = []
    if sys.argv[1].endswith(".json"):
        for path in sys.argv[1:]:
            out = path[: -len(".json")] + ".png"
            data = json.load(open(path))
            chart_of(data)(data, out)
            wrote.append(out)
    else:
        prefix = sys.argv[1]
        charts = (("-peers.json", peers_layer, "-peers-layer.png"), (".json", gemm_hbm, "-gemm-hbm.png"),
                  ("-moe-layer.json", layer_stages, "-layer-stages.png"))
        for suffix, chart, out in charts:
            data = load(prefix + suffix)
            if data is not None:
                chart(data, prefix + out)
                wrote.append(prefix + out)
        if not wrote:
            sys.exit(f"no benchmark JSON at {prefix}-peers.json, {prefix}.json or {prefix}-moe-layer.json")
    print("wrote " + " ".join(wrote))


if __name__ == "__main__":
    main()
