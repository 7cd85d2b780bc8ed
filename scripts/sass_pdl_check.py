#!/usr/bin/env python3
"""Checks the rules the library's PDL kernels keep around their wait (common/pdl.cuh, bench/NOTES.md §71), in
`cuobjdump -sass` of a binary or object. In SASS griddepcontrol.wait is ACQBULK and griddepcontrol.launch_dependents
PREEXIT. For every kernel that waits:

- no PREEXIT before its first ACQBULK: a kernel lets the next one launch only after its own wait, which is what lets
  the kernels after the permute kernel read the routing's outputs before their waits (the SiLU and decode kernels
  excepted: common/pdl.cuh says why their next kernels may launch before their waits);
- before its first ACQBULK only parameter (LDC) and L2 (LDG...STRONG.GPU, ld.global.cg; LDGSTS...BYPASS, cp.async.cg)
  loads: before the wait an SM's L1 may hold an older line, and only data that was complete before the kernel
  started may be read at all;
- no non-coherent load (LDG...CONSTANT, from `const __restrict__`) before its last ACQBULK: the compiler treats those
  loads as invariant and moved one above a wait once.

    scripts/sass_pdl_check.py build/bin/w4a8moe_gpu_tests [--cuobjdump PATH]
    scripts/sass_pdl_check.py --sass listing.sass

Exits 1 and names each kernel and instruction that breaks a rule; 77 (a test's skip) where cuobjdump cannot be run.
Where the CUDA installation lacks it, the configure installs NVIDIA's cuobjdump and nvdisasm wheels into third_party/
(tests/CMakeLists.txt, the sass.pdl_rules test); cuobjdump finds nvdisasm on PATH.
"""
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sass_loop import read_functions  # noqa: E402


def load_kind(text):
    """'param', 'l2', 'nc' or 'plain' for a load instruction's text; None for anything else."""
    words = text.split()
    opcode = words[1] if words[0].startswith("@") else words[0]
    parts = opcode.split(".")
    if parts[0] == "LDC":
        return "param"
    if parts[0] == "LDGSTS":  # cp.async: .cg (BYPASS) reads through L2 only
        return "l2" if "BYPASS" in parts else "plain"
    if parts[0] != "LDG":
        return None
    if "CONSTANT" in parts:
        return "nc"
    if "STRONG" in parts and "GPU" in parts:
        return "l2"
    return "plain"


# Kernels that let the next one launch before their own wait (common/pdl.cuh's exceptions to the first rule).
EARLY_LAUNCH_KERNELS = ("silu_mul_quantize_kernel", "decode_gemm_kernel", "permute_quantize_kernel")


def violations(name, instructions):
    """The rule each instruction of one kernel breaks, as lines of text."""
    waits = [n for n, i in enumerate(instructions) if i.opcode == "ACQBULK"]
    if not waits:
        return []
    early_launch = any(kernel in name for kernel in EARLY_LAUNCH_KERNELS)
    found = []
    for n, i in enumerate(instructions):
        where = f"{name}: {i.address:05x} {i.text}"
        kind = load_kind(i.text)
        if n < waits[0]:
            if i.opcode == "PREEXIT" and not early_launch:
                found.append(f"{where}: lets the next kernel launch before its own wait")
            elif kind in ("plain", "nc"):
                found.append(f"{where}: loads through L1 before the wait")
        if n < waits[-1] and kind == "nc" and n > waits[0]:
            found.append(f"{where}: a non-coherent load before a wait")
    return found


def read_sass(args):
    if args.sass:
        with open(args.sass) as f:
            return f.read().splitlines()
    candidates = [args.cuobjdump, shutil.which("cuobjdump"), "/usr/local/cuda/bin/cuobjdump"]
    cuobjdump = next((c for c in candidates if c and os.path.isfile(c)), "cuobjdump")
    try:
        listing = subprocess.run([cuobjdump, "-sass", args.binary], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"sass_pdl_check: cannot run {cuobjdump} -sass {args.binary}: {error}", file=sys.stderr)
        sys.exit(77)
    return listing.stdout.splitlines()


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary", nargs="?", help="an executable or object with sm_90a code")
    p.add_argument("--sass", help="a saved `cuobjdump -sass` listing instead of a binary")
    p.add_argument("--cuobjdump", help="the cuobjdump to run where it exists (else PATH, then /usr/local/cuda/bin)")
    args = p.parse_args(argv)
    if not args.binary and not args.sass:
        p.error("name a binary or --sass")
    functions = read_functions(read_sass(args))
    waiting = [name for name, instructions in functions.items() if any(i.opcode == "ACQBULK" for i in instructions)]
    found = [line for name in waiting for line in violations(name, functions[name])]
    for line in found:
        print(line)
    print(f"sass_pdl_check: {len(waiting)} kernels wait on a previous grid; {len(found)} rule breaks")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
