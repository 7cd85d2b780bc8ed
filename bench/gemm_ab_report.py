#!/usr/bin/env python3
"""Two builds of the GEMM benchmark side by side: the JSON files of w4a8moe_gemm_bench runs made alternately in one
device call (scripts/bench-ab.sh gemm) into one JSON and a markdown table of medians and ratios per (model, GEMM,
tokens, routing, method): each build's median, new over base, and the configs where the builds' heuristics pick
differently. Only ratios within one call count (bench/NOTES.md §61), as for the layer (ab_report.py).

    python3 bench/gemm_ab_report.py RUNS_DIR [--title T] [--out-dir DIR]

RUNS_DIR as ab_report.py reads it: one folder a run, <build>-<round>, each with the benchmark's JSON file. --out-dir
writes DIR/<date>-<card>-gemm-ab.{json,md}. Standard library only."""

import sys

# (beside this file) the runs' folders, their rows by case and the command line, as for the layer
from ab_report import BUILDS, median_or_none, rows_by_case, run_report


def summarize(runs):
    """One entry per (model, gemm, tokens, routing, method) of either build: each build's median us (failed timings,
    written as -1, left out), the configs it ran, the active experts, and the rounds."""
    def case_of(row):
        return row["model"], row["gemm"], row["tokens"], row.get("routing", "uniform"), row["method"]

    summary = []
    for (model, gemm, tokens, routing, method), rows in rows_by_case(runs, case_of):
        us = {b: [r["us"] for r in rows[b] if r.get("us", -1) > 0] for b in BUILDS}
        any_row = (rows["base"] or rows["new"])[0]
        summary.append({"model": model, "gemm": gemm, "tokens": tokens, "routing": routing, "method": method,
                        "active_experts": any_row.get("active_experts"),
                        "us": {b: median_or_none(us[b]) for b in BUILDS},
                        "configs": {b: sorted({r.get("config", "?") for r in rows[b]}) for b in BUILDS},
                        "rounds": {b: len(us[b]) for b in BUILDS}})
    return summary


def ratio(pair):
    return None if not pair["base"] or pair["new"] is None else pair["new"] / pair["base"]


def markdown(summary, device, title):
    lines = [f"# {title} ({device})", "",
             "w4a8moe_gemm_bench, two builds alternately in one device call (scripts/bench-ab.sh gemm), each GEMM in "
             "CUDA graphs with its weights rotated past L2; medians of the rounds in us, and new over base (below 1: "
             "the new build is faster). \"w4a8\" is the heuristic's pick; the configs column names it.", "",
             "| model | GEMM | tokens | routing | active experts | method | base | new | new / base | configs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in summary:
        base, new = e["us"]["base"], e["us"]["new"]
        r = ratio(e["us"])
        configs = e["configs"]
        config = ", ".join(configs["base"]) if configs["base"] == configs["new"] else \
            f"{', '.join(configs['base']) or '-'} -> {', '.join(configs['new']) or '-'}"
        lines.append(f"| {e['model']} | {e['gemm']} | {e['tokens']} | {e['routing']} | {e['active_experts']} | "
                     f"{e['method']} | {'-' if base is None else f'{base:.1f}'} | "
                     f"{'-' if new is None else f'{new:.1f}'} | {'-' if r is None else f'{r:.3f}'} | {config} |")
    return "\n".join(lines) + "\n"


def gemm_report(runs, title):
    device = runs["base"][0][1]["device"]
    summary = summarize(runs)
    result = {"device": device, "title": title, "summary": summary,
              "runs": {b: [{"round": r, "hbm_read_gbps": run.get("hbm_read_gbps"), "rows": run["rows"]}
                           for r, run in sorted(runs[b], key=lambda x: x[0])] for b in BUILDS}}
    return device, result, markdown(summary, device, title)


def main(argv=None):
    return run_report(argv, __doc__, "gemm", "GEMM A/B", gemm_report)


if __name__ == "__main__":
    sys.exit(main())
