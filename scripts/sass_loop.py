#!/usr/bin/env python3
"""The innermost loop around a kernel's first wgmma, read from `cuobjdump -sass`: its instructions by opcode, and
the fixed stall cycles and scoreboard waits the compiler encoded in each (bench/NOTES.md §50, §50a).

    cuobjdump -sass build/CMakeFiles/w4a8moe.dir/src/gemm/stream_gemm.cu.o > stream.sass
    python3 scripts/sass_loop.py stream.sass 'stream_gemm_kernelILi8ELi4E13__nv_bfloat16' [--list]

Every SASS instruction of sm_90 is 128 bits; cuobjdump prints them as two 64-bit words, the second on a line of its
own. Bits 41-44 of that word are the cycles the warp waits before its next instruction may issue, bit 45 the yield
hint, bits 46-48 and 49-51 the scoreboards the instruction sets when its result (or its source read) is done (7:
none), bits 52-57 the scoreboards it waits on first. Where the CUDA installation lacks cuobjdump, the configure puts
NVIDIA's cuobjdump and nvdisasm wheels in third_party/cuda-sass-tools-*/nvidia/cu13/bin (tests/CMakeLists.txt);
cuobjdump finds nvdisasm on PATH.
"""
import argparse
import collections
import re
import sys

FUNCTION = re.compile(r"\s+Function : (\S+)")
INSTRUCTION = re.compile(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;\s*/\* 0x[0-9a-f]+ \*/")
SECOND_WORD = re.compile(r"\s+/\* (0x[0-9a-f]+) \*/\s*$")
BRANCH_TARGET = re.compile(r"\bBRA\b.*?(0x[0-9a-f]+)")


class Instruction:
    def __init__(self, address, text):
        self.address, self.text, self.control = address, text, None

    @property
    def opcode(self):
        words = self.text.split()
        return (words[1] if words[0].startswith("@") else words[0]).split(".")[0]

    @property
    def stall(self):
        return (self.control >> 41) & 0xF

    @property
    def waits_on(self):
        return (self.control >> 52) & 0x3F


def read_functions(lines):
    """{kernel name: [Instruction]} with each instruction's control word."""
    functions, current, last = {}, None, None
    for line in lines:
        m = FUNCTION.match(line)
        if m:
            current = functions.setdefault(m.group(1), [])
            continue
        m = INSTRUCTION.match(line)
        if m and current is not None:
            last = Instruction(int(m.group(1), 16), m.group(2))
            current.append(last)
            continue
        m = SECOND_WORD.match(line)
        if m and last is not None and last.control is None:
            last.control = int(m.group(1), 16)
    return functions


def wgmma_loop(instructions):
    """The instructions of the shortest backward branch's range that holds the first wgmma (QGMMA/HGMMA)."""
    first = next((i.address for i in instructions if "GMMA" in i.opcode), None)
    if first is None:
        return []
    best = None
    for i in instructions:
        m = BRANCH_TARGET.search(i.text)
        if m:
            target = int(m.group(1), 16)
            if target <= first <= i.address and (best is None or i.address - target < best[1] - best[0]):
                best = (target, i.address)
    return [i for i in instructions if best and best[0] <= i.address <= best[1]]


def summarise(name, loop):
    stalls = sum(i.stall for i in loop)
    waits = sum(1 for i in loop if i.waits_on)
    wgmmas = sum("GMMA" in i.opcode for i in loop)
    opcodes = collections.Counter(i.opcode for i in loop).most_common(8)
    return (f"{name}\n  loop of {len(loop)} instructions, {wgmmas} wgmmas: {stalls} fixed stall cycles, "
            f"{waits} instructions wait on a scoreboard\n  " + ", ".join(f"{op} {n}" for op, n in opcodes))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sass")
    p.add_argument("kernel", help="a part of the kernel's mangled name")
    p.add_argument("--list", action="store_true", help="every instruction of the loop with its stall and waits")
    args = p.parse_args(argv)
    with open(args.sass) as f:
        functions = read_functions(f)
    found = False
    for name, instructions in functions.items():
        if args.kernel not in name:
            continue
        found = True
        loop = wgmma_loop(instructions)
        print(summarise(name, loop))
        if args.list:
            for i in loop:
                print(f"  {i.address:05x}  stall {i.stall:2d}  waits {i.waits_on:06b}  {i.text}")
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
