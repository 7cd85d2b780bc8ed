#!/usr/bin/env python3
"""Two builds of the layer benchmark side by side: the JSON files of w4a8moe_moe_bench runs made alternately in one
device call (scripts/bench-ab.sh layer) into one JSON and a markdown table of medians and differences per (model,
tokens, layout): the layer's total (the path it takes), both paths' totals, the stage that moved most, and the GEMM
configs where the builds pick differently. Only differences within one call count (bench/NOTES.md §61: two H100s
timed the same build 8 us apart).

    python3 bench/ab_report.py RUNS_DIR [--title T] [--out-dir DIR]

RUNS_DIR holds one folder a run, named <build>-<round> ("base-1", "new-1", "base-2", ...), each with the benchmark's
JSON file; the builds are "base" and "new". --out-dir writes DIR/<date>-<card>-layer-ab.{json,md}, the card the runs
name. Standard library only."""

import argparse
import datetime
import glob
import json
import os
import statistics
import sys

from peers_report import card_name, flush_words  # (beside this file) the results' words for flushes and cards

BUILDS = ("base", "new")
TOTALS = ("total_graph_us", "staged_total_graph_us", "one_launch_total_graph_us")


def load_runs(runs_dir):
    """{build: [(round, the run's JSON)]} from RUNS_DIR/<build>-<round>/*.json."""
    runs = {build: [] for build in BUILDS}
    for folder in sorted(glob.glob(os.path.join(runs_dir, "*-*"))):
        build, _, round_name = os.path.basename(folder).rpartition("-")
        files = glob.glob(os.path.join(folder, "*.json"))
        if build not in runs or not round_name.isdigit() or not os.path.isdir(folder):
            continue
        if not files:  # a round whose benchmark failed (bench-ab.sh said so): the others still compare
            print(f"ab_report: {folder} holds no benchmark JSON file; that round is left out", file=sys.stderr)
            continue
        if len(files) > 1:
            raise ValueError(f"{folder}: expected one benchmark JSON file, found {len(files)}")
        with open(files[0]) as f:
            runs[build].append((int(round_name), json.load(f)))
    for build in BUILDS:
        if not runs[build]:
            raise ValueError(f"{runs_dir}: no run of build '{build}' (folders named {build}-<round>)")
    devices = {run["device"] for build in BUILDS for _, run in runs[build]}
    if len(devices) != 1:
        raise ValueError(f"the runs come from different cards: {sorted(devices)}; only one call's runs compare")
    return runs


def median_or_none(values):
    values = [v for v in values if v]  # the benchmark writes 0 or null for a path it did not time
    return statistics.median(values) if values else None


def rows_by_case(runs, case_of):
    """[(case, {build: [rows]})] over every round's rows of either build, sorted by case: case_of(row) names a row's."""
    cases = {}
    for build in BUILDS:
        for _, run in runs[build]:
            for row in run["rows"]:
                cases.setdefault(case_of(row), {b: [] for b in BUILDS})[build].append(row)
    return sorted(cases.items())


def summarize(runs):
    """One entry per (model, tokens, layout, routing draw) of either build: each total's median per build, the stage
    medians, the configs each build picked, the local experts the draw gives, and the rounds."""
    def case_of(row):
        return row["model"], row["tokens"], row.get("layout", "lookup"), row.get("draw", 0)

    summary = []
    for (model, tokens, layout, draw), rows in rows_by_case(runs, case_of):
        entry = {"model": model, "tokens": tokens, "layout": layout, "draw": draw,
                 "active_experts": sorted({r.get("active_experts") for b in BUILDS for r in rows[b]} - {None}),
                 "rounds": {b: len(rows[b]) for b in BUILDS}}
        for field in TOTALS:
            entry[field] = {b: median_or_none([r.get(field) for r in rows[b]]) for b in BUILDS}
        stages = sorted({s for b in BUILDS for r in rows[b] for s in r.get("stages_us", {})})
        entry["stages_us"] = {s: {b: median_or_none([r.get("stages_us", {}).get(s) for r in rows[b]]) for b in BUILDS}
                              for s in stages}
        entry["configs"] = {b: sorted({f"{r.get('gemm1_config', '?')} / {r.get('gemm2_config', '?')}" for r in rows[b]})
                            for b in BUILDS}
        summary.append(entry)
    return summary


def difference(pair):
    return None if pair["base"] is None or pair["new"] is None else pair["new"] - pair["base"]


def fmt(value, signed=False):
    if value is None:
        return "-"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def markdown(summary, device, l2_flush, title, code_cleared=False):
    """code_cleared: the benchmark cleared the SMs' instruction caches before each replay too (peers_report's
    flush_words)."""
    lines = [f"# {title} ({device})", "",
             f"w4a8moe_moe_bench, two builds alternately in one device call (scripts/bench-ab.sh layer), L2 "
             f"{flush_words(l2_flush, code_cleared)}; medians of the rounds' "
             "CUDA-graph totals in us. \"total\" is the path the layer takes; the stage column names the stage whose "
             "median moved most (the stages timed between event nodes of a second graph of the layer, which keep them "
             "from overlapping).", "",
             "| model | tokens | layout | total: base | total: new | difference | staged: base / new | "
             "one launch: base / new | stage moved most | configs (GEMM1 / GEMM2) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    draws = any(e.get("draw", 0) for e in summary)
    for e in summary:
        experts = "/".join(str(n) for n in e.get("active_experts", []))
        model = f"{e['model']} (draw {e.get('draw', 0)}, {experts} experts)" if draws else e["model"]
        moved = [(abs(difference(p)), name, p) for name, p in e["stages_us"].items() if difference(p) is not None]
        stage = "-"
        if moved:
            _, name, p = max(moved)
            stage = f"{name} {fmt(p['base'])} -> {fmt(p['new'])}"
        configs = e["configs"]
        config = " / ".join(configs["base"]) if configs["base"] == configs["new"] else \
            f"{', '.join(configs['base']) or '-'} -> {', '.join(configs['new']) or '-'}"
        total, staged, one = (e[field] for field in TOTALS)
        lines.append(f"| {model} | {e['tokens']} | {e['layout']} | {fmt(total['base'])} | {fmt(total['new'])} | "
                     f"{fmt(difference(total), signed=True)} | {fmt(staged['base'])} / {fmt(staged['new'])} | "
                     f"{fmt(one['base'])} / {fmt(one['new'])} | {stage} | {config} |")
    return "\n".join(lines) + "\n"


def run_report(argv, doc, kind, default_title, report):
    """The A/B reports' command line (RUNS_DIR [--title T] [--out-dir DIR]), for this file and gemm_ab_report.py:
    report(runs, title) gives the card, the JSON result and the markdown; --out-dir writes
    DIR/<date>-<card>-<kind>-ab.{json,md}."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("runs_dir")
    parser.add_argument("--title", default=default_title)
    parser.add_argument("--out-dir", help=f"write DIR/<date>-<card>-{kind}-ab.json and .md")
    args = parser.parse_args(argv)
    try:
        device, result, text = report(load_runs(args.runs_dir), args.title)
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as error:
        print(f"{kind} A/B report: {error}", file=sys.stderr)
        return 1
    print(text, end="")
    if args.out_dir:
        stem = os.path.join(args.out_dir, f"{datetime.date.today().isoformat()}-{card_name(device)}-{kind}-ab")
        os.makedirs(args.out_dir, exist_ok=True)
        with open(stem + ".json", "w") as f:
            json.dump(result, f, indent=1)
        with open(stem + ".md", "w") as f:
            f.write(text)
    return 0


def layer_report(runs, title):
    first = runs["base"][0][1]
    summary = summarize(runs)
    code_cleared = first.get("instruction_caches_flushed", False)
    result = {"device": first["device"], "l2_flush": first.get("l2_flush"), "instruction_caches_flushed": code_cleared,
              "title": title, "summary": summary,
              "runs": {b: [{"round": r, "rows": run["rows"]} for r, run in sorted(runs[b], key=lambda x: x[0])]
                       for b in BUILDS}}
    return first["device"], result, markdown(summary, first["device"], first.get("l2_flush", "?"), title, code_cleared)


def main(argv=None):
    return run_report(argv, __doc__, "layer", "Layer A/B", layer_report)


if __name__ == "__main__":
    sys.exit(main())
