#!/usr/bin/env python3
"""Where a kernel's warps wait, by SASS instruction: reads the source page of an Nsight Compute report exported as
CSV (`ncu -i REPORT --page source --csv --print-source sass`, a report taken with the SourceCounters section) and
prints the instructions with the most warp-stall samples and the samples summed by opcode. scripts/ncu-probe.sh
runs it with SOURCE=1.

    python3 scripts/ncu_stalls.py report-sass.csv [--top 20]

The columns are found by their names' words, not their positions, which differ between Nsight Compute versions:
the SASS text ("Source"), the sampled stalls of every sample ("Warp Stall Sampling (All Samples)") and, where the
report has them, those of the samples whose warp did not issue ("(Not-issued Samples)").
"""
import argparse
import collections
import csv
import sys


def find_column(header, *words, exclude=()):
    """The first column whose name holds every word (lower case) and none of `exclude`; a name that is exactly the
    one word first."""
    if len(words) == 1:
        for i, name in enumerate(header):
            if name.strip().lower() == words[0]:
                return i
    for i, name in enumerate(header):
        lower = name.lower()
        if all(w in lower for w in words) and not any(w in lower for w in exclude):
            return i
    return None


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def opcode(sass):
    """The opcode of one SASS line without its predicate and modifiers: `@!P0 SYNCS.PHASECHK.TRANS64 ...` ->
    `SYNCS`; the first modifier is kept where it names the operation (`WARPGROUP.DEPBAR`, `SYNCS.PHASECHK`)."""
    words = sass.split()
    if words and words[0].startswith("@"):
        words = words[1:]
    if not words:
        return "?"
    parts = words[0].split(".")
    keep = 2 if parts[0] in ("SYNCS", "WARPGROUP", "BAR", "MEMBAR", "DEPBAR") and len(parts) > 1 else 1
    return ".".join(parts[:keep])


def read_rows(lines):
    """(sass, all samples, not-issued samples) per instruction of the CSV's lines; the header is the first line
    that names a source and a sampling column (ncu prints its own notes before the table)."""
    reader = csv.reader(lines)
    header = None
    for row in reader:
        if header is None:
            lowered = [c.lower() for c in row]
            if any("source" == c.strip() for c in lowered) and any("sampling" in c for c in lowered):
                header = row
                source = find_column(header, "source")
                all_samples = find_column(header, "sampling", "all samples")  # not "st-all" in "stall"
                if all_samples is None:
                    all_samples = find_column(header, "sampling", exclude=("not",))
                not_issued = find_column(header, "sampling", "not")
            continue
        if len(row) <= max(source, all_samples):
            continue
        yield row[source].strip(), number(row[all_samples]), number(row[not_issued]) if not_issued is not None else 0.0
    if header is None:
        raise ValueError("no header with a Source and a Warp Stall Sampling column: was the report taken with "
                         "--section SourceCounters, and exported with --page source --csv --print-source sass?")


def summarise(rows, top):
    rows = list(rows)
    total = sum(r[1] for r in rows) or 1.0
    out = [f"{len(rows)} instructions, {total:.0f} samples"]
    out.append("top instructions (share of the samples, not issued, SASS):")
    for sass, samples, not_issued in sorted(rows, key=lambda r: -r[1])[:top]:
        out.append(f"  {100 * samples / total:5.1f} %  {100 * not_issued / total:5.1f} %  {sass}")
    by_opcode = collections.Counter()
    for sass, samples, _ in rows:
        by_opcode[opcode(sass)] += samples
    out.append("by opcode:")
    for name, samples in by_opcode.most_common(top):
        out.append(f"  {100 * samples / total:5.1f} %  {name}")
    return "\n".join(out)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv_path")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    with open(args.csv_path, newline="") as f:
        print(summarise(read_rows(f), args.top))


if __name__ == "__main__":
    main(sys.argv[1:])
