#!/usr/bin/env python3
"""The performance targets the project holds itself to, checked on benchmark results: one line per target with the
cases met, the worst case and its value against the limit. Each target is stated once, here (TARGETS).

    python3 bench/criteria.py --layer L.json [--peers P.json] [--gemm G.json ...] [--before L0.json] \
        [--layout lookup|exact] [--noise 0.03] [--details]

  --layer   w4a8moe_moe_bench's JSON (CUDA-graph totals; read once as that benchmark defines it)
  --peers   bench/peers_bench.py's JSON (our layer and GEMMs beside vLLM's MoE kernels, one process)
  --gemm    w4a8moe_gemm_bench's JSON, one or more (later files add cases the earlier ones lack); the decode rows want
            --models all --tokens 16,64,128 --routing uniform,skewed, the prefill rows --tokens 8192 with the W8A8
            baselines (not --no-baselines)
  --before  an earlier w4a8moe_moe_bench JSON of the same card: the "no slower than before" targets
  --layout  whose layer, peers and GEMM rows are checked: the default lookup-table layout or the exact-scale one
            (its GEMM rows: gemm_bench --exact's "w4a8_exact", the heuristic's pick on that layout)
  --noise   the share by which a case may be slower than --before and still count as no slower (the spread of the
            same build between processes, bench/NOTES.md §48: 0.99-1.08)

--layer, --gemm and --before also read scripts/bench-ab.sh's JSON as FILE.json:base or FILE.json:new: that build's
rounds, each case's row of the median time (the lower of two) and the rounds' median read bandwidth.

A case the targets name but the files lack counts as not met, and is listed; a target whose file is not given is
"not measured". Every number is from the card its file names: compare only files of one card.
"""
import argparse
import json
import sys
from dataclasses import dataclass
from typing import Callable, List, Optional

from peers_report import L2_FLUSH_WORDS, OURS, OURS_EXACT, VLLM_METHODS  # the peers JSON's names, stated there

INT4_MODELS = ("qwen3-30b-a3b", "deepseek-v3-ep8", "mixtral-8x7b")
DECODE_TOKENS = (1, 4, 16, 64, 128)
PREFILL_LAYER_LIMIT_US = {"qwen3-30b-a3b": 700.0, "deepseek-v3-ep8": 800.0, "mixtral-8x7b": 5000.0}


@dataclass
class Check:
    case: str
    value: Optional[float]  # None: the files lack the case
    limit: Optional[float]  # None: it depends on what the files lack (the read-once time)


@dataclass
class Target:
    group: str
    name: str
    unit: str  # how value and limit print: "x" (ratio), "us", "%"
    at_least: bool  # value >= limit meets it (else value <= limit)
    needs: str  # the input it reads: "layer", "peers", "gemm", "before"
    checks: Callable[["Results", argparse.Namespace], List[Check]]

    def met(self, c: Check) -> bool:
        if c.value is None:
            return False
        return c.value >= c.limit if self.at_least else c.value <= c.limit

    def bound(self, c: Check) -> str:
        """The limit as the tables print it."""
        return "unknown" if c.limit is None else f"{'>=' if self.at_least else '<='} {show(c.limit, self.unit)}"

    def badness(self, c: Check) -> float:
        """How far a case is from its limit, larger is worse; a missing case is the worst."""
        if c.value is None:
            return float("inf")
        if self.at_least:
            return c.limit / c.value if c.value > 0 else float("inf")
        return c.value / c.limit


class Results:
    """The rows of the given files, looked up by case: within a file a later row of a case replaces an earlier one;
    of several GEMM files, the first that has a case gives all of its rows."""

    def __init__(self, layer=None, peers=None, gemms=(), before=None, layout="lookup"):
        self.layout = layout
        self.layer = self._layer_rows(layer)
        self.before = self._layer_rows(before)
        self.peers = {}
        for r in (peers or {}).get("rows", []):
            if isinstance(r["us"], (int, float)) and r["us"] > 0:  # a method that failed has no time
                self.peers[(r["model"], r["tokens"], r["level"], r["method"])] = r["us"]
        self.gemm = {}  # (model, gemm, tokens, routing) -> {"hbm": GB/s, "rows": {method: row}}, from one file
        for data in gemms:
            cases = {}
            for r in data.get("rows", []):
                key = (r["model"], r["gemm"], r["tokens"], r["routing"])
                cases.setdefault(key, {"hbm": data["hbm_read_gbps"], "rows": {}})["rows"][r["method"]] = r
            for key, case in cases.items():
                self.gemm.setdefault(key, case)

    def _layer_rows(self, data):
        if data is None:
            return None
        return {(r["model"], r["tokens"]): r for r in data.get("rows", []) if r.get("layout", "lookup") == self.layout}

    def ours(self):
        return OURS if self.layout == "lookup" else OURS_EXACT

    def ours_gemm(self):
        """gemm_bench's row of the heuristic's pick on the layout (the exact-scale layout's only with --exact)."""
        return "w4a8" if self.layout == "lookup" else f"w4a8_{self.layout}"

    def layer_us(self, model, tokens):
        r = self.layer.get((model, tokens))
        return r["total_graph_us"] if r else None


def case_name(model, tokens, extra=""):
    return f"{model} {tokens} tok{extra}"


def read_once_limit(factor, add_us):
    """Layer time <= factor x read once + add_us, on the layer benchmark's rows."""

    def checks(res, model, tokens_list):
        out = []
        for t in tokens_list:
            r = res.layer.get((model, t))
            if r is None or r["read_once_us"] <= 0:
                out.append(Check(case_name(model, t), None, None))
            else:
                out.append(Check(case_name(model, t), r["total_graph_us"], factor * r["read_once_us"] + add_us))
        return out

    return checks


def decode_vs_vllm(res, _):
    out = []
    for m in INT4_MODELS:
        for t in DECODE_TOKENS:
            ours = res.peers.get((m, t, "layer", res.ours()))
            theirs = [res.peers[(m, t, "layer", v)] for v in VLLM_METHODS if (m, t, "layer", v) in res.peers]
            value = ours / min(theirs) if ours and theirs else None
            out.append(Check(case_name(m, t, " (ours / fastest vLLM)"), value, 1.0))
    return out


def decode_read_once(res, _):
    rule = read_once_limit(1.2, 8.0)
    return [c for m in INT4_MODELS for c in rule(res, m, DECODE_TOKENS)]


def decode_gemm_bandwidth(res, _):
    out = []
    for m in INT4_MODELS:
        for t in (16, 64, 128):
            keys = [k for k in res.gemm if k[0] == m and k[2] == t]
            if not keys:
                out.append(Check(case_name(m, t, " (no GEMM rows)"), None, 85.0))
            for key in sorted(keys):
                row = res.gemm[key]["rows"].get(res.ours_gemm())
                value = 100.0 * row["weight_gbps"] / res.gemm[key]["hbm"] if row and row["us"] > 0 else None
                extra = f" GEMM{key[1]} {key[3]}" + (f" ({row['config']})" if row else "")
                out.append(Check(case_name(m, t, extra), value, 85.0))
    return out


def one_launch_qwen3(res, _):
    return [Check(case_name("qwen3-30b-a3b", 1), res.layer_us("qwen3-30b-a3b", 1), 15.0)] + \
        read_once_limit(1.3, 8.0)(res, "qwen3-30b-a3b", (4,))


def idle_rank(res, _):
    return [Check(case_name("deepseek-v3-ep8-idle", t), res.layer_us("deepseek-v3-ep8-idle", t), 6.0) for t in (1, 16)]


def mixtral_one_token(res, _):
    return read_once_limit(1.15, 6.0)(res, "mixtral-8x7b", (1,))


def prefill_gemm_vs_w8a8(res, _):
    out = []
    for m in INT4_MODELS:
        keys = [k for k in res.gemm if k[0] == m and k[2] == 8192]
        if not keys:
            out.append(Check(case_name(m, 8192, " (no GEMM rows)"), None, 1.0))
        for key in sorted(keys):
            rows = res.gemm[key]["rows"]
            ours = rows.get(res.ours_gemm())
            w8a8 = [r["us"] for name, r in rows.items() if name.startswith("w8a8") and r["us"] > 0]
            value = ours["us"] / min(w8a8) if ours and ours["us"] > 0 and w8a8 else None
            out.append(Check(case_name(m, 8192, f" GEMM{key[1]} {key[3]} (W4A8 / best W8A8)"), value, 1.0))
    return out


def prefill_layer_time(res, _):
    return [Check(case_name(m, 8192), res.layer_us(m, 8192), limit) for m, limit in PREFILL_LAYER_LIMIT_US.items()]


def prefill_outside_share(res, _):
    out = []
    for m in INT4_MODELS:
        r = res.layer.get((m, 8192))
        out.append(Check(case_name(m, 8192), 100.0 * r["outside_gemms_share"] if r else None, 15.0))
    return out


def prefill_vs_vllm_layer(res, _):
    out = []
    for m in ("qwen3-30b-a3b", "deepseek-v3-ep8"):
        ours = res.peers.get((m, 8192, "layer", res.ours()))
        theirs = res.peers.get((m, 8192, "layer", "vllm_cutlass_w4a8"))
        out.append(Check(case_name(m, 8192, " (vLLM CUTLASS W4A8 / ours)"),
                         theirs / ours if ours and theirs else None, 1.6))
    return out


def thousand_vs_vllm(res, _):
    out = []
    for m in INT4_MODELS:
        for level in ("layer", "gemm1", "gemm2"):
            ours = res.peers.get((m, 1024, level, res.ours()))
            theirs = res.peers.get((m, 1024, level, "vllm_cutlass_w4a8"))
            out.append(Check(case_name(m, 1024, f" {level} (ours / vLLM CUTLASS W4A8)"),
                             ours / theirs if ours and theirs else None, 1.0))
    return out


def no_slower_than_before(res, args):
    out = []
    for key in sorted(res.before, key=lambda k: (k[0], k[1])):
        before = res.before[key]["total_graph_us"]
        now = res.layer_us(*key)
        out.append(Check(case_name(*key, f" ({before:.1f} us before)"), now / before if now else None,
                         1.0 + args.noise))
    return out


TARGETS = [
    Target("Decode, 1-128 tokens", "layer <= the fastest of vLLM's three int4 MoE kernels", "x", False, "peers",
           decode_vs_vllm),
    Target("Decode, 1-128 tokens", "layer <= 1.2 x read once + 8 us", "us", False, "layer", decode_read_once),
    Target("Decode, 1-128 tokens", "GEMMs at 16-128 tokens >= 85 % of the measured HBM read", "%", True, "gemm",
           decode_gemm_bandwidth),
    Target("The decode layer's fixed cost", "Qwen3-30B-A3B: 1 token <= 15 us, 4 tokens <= 1.3 x read once + 8 us",
           "us", False, "layer", one_launch_qwen3),
    Target("The decode layer's fixed cost", "DeepSeek-V3 EP8 rank with no local tokens <= 6 us at 1 and 16 tokens",
           "us", False, "layer", idle_rank),
    Target("The decode layer's fixed cost", "Mixtral-8x7B 1 token <= 1.15 x read once + 6 us", "us", False, "layer",
           mixtral_one_token),
    Target("Prefill", "grouped GEMM at 8192 tokens <= the best W8A8 config", "x", False, "gemm", prefill_gemm_vs_w8a8),
    Target("Prefill", "layer at 8192 tokens: Qwen3 <= 700, DeepSeek-V3 EP8 <= 800, Mixtral <= 5000 us", "us", False,
           "layer", prefill_layer_time),
    Target("Prefill", "layer at 8192 tokens: outside the GEMMs <= 15 %", "%", False, "layer", prefill_outside_share),
    Target("Prefill", "layer at 8192 tokens >= 1.6 x vLLM's CUTLASS W4A8 layer (Qwen3, DeepSeek-V3 EP8)", "x", True,
           "peers", prefill_vs_vllm_layer),
    Target("Prefill", "1024 tokens: layer and GEMMs no slower than vLLM's CUTLASS W4A8", "x", False, "peers",
           thousand_vs_vllm),
    Target("Every token count", "layer no slower than before (every case of --before)", "x", False, "before",
           no_slower_than_before),
]


def show(value, unit):
    if value is None:
        return "not measured"
    return {"x": f"{value:.2f}", "us": f"{value:.1f} us", "%": f"{value:.0f} %"}[unit]


def evaluate(res, args):
    """(target, checks or None where its input is absent) for every target."""
    given = {"layer": res.layer is not None, "peers": bool(res.peers), "gemm": bool(res.gemm),
             "before": res.before is not None and res.layer is not None}
    return [(t, t.checks(res, args) if given[t.needs] else None) for t in TARGETS]


def report(evaluated, sources, details=False):
    lines = ["| group | target | cases met | worst case | value | limit |", "|---|---|---|---|---|---|"]
    for t, checks in evaluated:
        if checks is None:
            lines.append(f"| {t.group} | {t.name} | not measured (no --{t.needs}) | | | |")
            continue
        met = sum(t.met(c) for c in checks)
        worst = max(checks, key=t.badness)
        missing = sum(c.value is None for c in checks)
        count = f"{met}/{len(checks)}" + (f" ({missing} not measured)" if missing else "")
        lines.append(f"| {t.group} | {t.name} | {count} | {worst.case} | {show(worst.value, t.unit)} | "
                     f"{t.bound(worst)} |")
    out = [f"Inputs: {', '.join(sources)}.", ""] + lines
    if details:
        out += ["", "| target | case | value | limit | met |", "|---|---|---|---|---|"]
        for t, checks in evaluated:
            for c in checks or []:
                out.append(f"| {t.name} | {c.case} | {show(c.value, t.unit)} | {t.bound(c)} | "
                           f"{'yes' if t.met(c) else 'no'} |")
    return "\n".join(out)


def one_build(data, build, case_keys, time_key):
    """One build (base or new) of a scripts/bench-ab.sh JSON as its benchmark's own JSON: per case, the row of the
    median time over the rounds (the lower of two), and the rounds' median read bandwidth where they measured it."""
    rounds = data.get("runs", {}).get(build)
    if not rounds:
        raise ValueError(f"no build '{build}' (the file has {', '.join(data.get('runs', {})) or 'none'})")
    cases = {}
    for rnd in rounds:
        for r in rnd["rows"]:
            cases.setdefault(tuple(r.get(k) for k in case_keys), []).append(r)
    rows = []
    for group in cases.values():
        group = sorted(group, key=lambda r: r[time_key])
        rows.append(group[(len(group) - 1) // 2])
    out = {k: v for k, v in data.items() if k != "runs"}
    out["rows"] = rows
    bandwidths = sorted(rnd["hbm_read_gbps"] for rnd in rounds if "hbm_read_gbps" in rnd)
    if bandwidths:
        out["hbm_read_gbps"] = bandwidths[(len(bandwidths) - 1) // 2]
    return out


LAYER_CASE = (("model", "tokens", "layout"), "total_graph_us")
GEMM_CASE = (("model", "gemm", "tokens", "routing", "method"), "us")


def flush_of(data):
    """The layer timings' L2 flush (moe_bench and peers_bench --l2-flush; files from before the option wrote)."""
    return data.get("l2_flush", "write")


def flush_warnings(data):
    """What keeps the layer files' times (`data`: {"layer" | "peers" | "before": JSON}) from comparing or counting."""
    flushes = {k: flush_of(d) for k, d in data.items()}
    warnings = []
    if len(set(flushes.values())) > 1:
        warnings.append("the files flushed L2 differently (by writing costs the layer 2-10 us more, bench/NOTES.md "
                        "§61); their numbers do not compare.")
    if "none" in flushes.values():
        warnings.append("L2 was not flushed between replays (--l2-flush none, a diagnostic floor); these times do "
                        "not count for the targets.")
    # The layer benchmark clears the SMs' instruction caches since §69 (the peers benchmark's torch flush always did).
    warm_code = [k for k in ("layer", "before") if k in data and flushes[k] != "none" and
                 not data[k].get("instruction_caches_flushed", False)]
    if warm_code:
        warnings.append(f"{' and '.join(warm_code)}: timed with the layer's code left in the instruction caches "
                        "(before bench/NOTES.md §69), which puts the one-launch layer 7-9 us low.")
    return warnings


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layer")
    p.add_argument("--peers")
    p.add_argument("--gemm", nargs="+", default=[])
    p.add_argument("--before")
    p.add_argument("--layout", choices=("lookup", "exact"), default="lookup")
    p.add_argument("--noise", type=float, default=0.03)
    p.add_argument("--details", action="store_true")
    args = p.parse_args(argv)

    def load(spec, keys, case=None):
        path, _, build = spec.rpartition(":") if spec.endswith((":base", ":new")) else (spec, "", "")
        with open(path) as f:
            data = json.load(f)
        if build:
            try:
                data = one_build(data, build, *case)
            except (ValueError, KeyError, TypeError) as e:
                sys.exit(f"{spec}: not a scripts/bench-ab.sh JSON of that benchmark ({e})")
        missing = [k for k in keys if any(k not in r for r in data.get("rows", []))]
        if "device" not in data or missing:
            sys.exit(f"{path}: not the expected benchmark's JSON (rows without {', '.join(missing) or 'device'})")
        return data

    files = {"layer": args.layer, "peers": args.peers, "before": args.before}
    layer_keys = ("model", "tokens", "total_graph_us", "read_once_us", "outside_gemms_share")
    keys = {"layer": layer_keys, "before": layer_keys, "peers": ("model", "tokens", "level", "method", "us")}
    data = {k: load(v, keys[k], LAYER_CASE) if v else None for k, v in files.items()}
    gemms = [load(g, ("model", "gemm", "tokens", "routing", "method", "us", "weight_gbps"), GEMM_CASE)
             for g in args.gemm]
    sources = [f"{k} {v} ({data[k]['device']}, L2 {L2_FLUSH_WORDS[flush_of(data[k])]})"
               for k, v in files.items() if v]
    sources += [f"gemm {g} ({d['device']})" for g, d in zip(args.gemm, gemms)]
    devices = {d["device"] for d in list(data.values()) + gemms if d}
    res = Results(data["layer"], data["peers"], gemms, data["before"], args.layout)
    print(f"# Targets, {args.layout} layout, on {' and '.join(sorted(devices)) or 'no results'}\n")
    if len(devices) > 1:
        print("Warning: the files come from different cards; their numbers do not compare.\n")
    for warning in flush_warnings({k: d for k, d in data.items() if d}):
        print(f"Warning: {warning}\n")
    print(report(evaluate(res, args), sources, args.details))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
