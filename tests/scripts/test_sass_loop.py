"""scripts/sass_loop.py on a made-up cuobjdump listing: the loop is the shortest backward branch around the first
wgmma (not the outer loop, not code before it), and the control word's stall and scoreboard fields decode."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import sass_loop  # noqa: E402


def control(stall, waits=0, sets=7):
    """The second word of an instruction with these control fields (no reuse, no read scoreboard)."""
    bits = stall | (1 << 4) | (sets << 5) | (7 << 8) | (waits << 11)
    return f"0x{bits << 41:016x}"


def listing(rows):
    lines = ["\tcode for sm_90a", "\t\tFunction : _Z6kernelv", "\t.headerflags @\"EF_CUDA_SM90\""]
    for address, text, stall, waits, sets in rows:
        lines.append(f"        /*{address:04x}*/                   {text} ;   /* 0x000000000000794d */")
        lines.append(f"                                                       /* {control(stall, waits, sets)} */")
    return lines


ROWS = [
    (0x0000, "MOV R1, c[0x0][0x28]", 1, 0, 7),
    (0x0010, "SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [R47+URZ], R46", 3, 0, 0),  # a shorter loop, before the wgmma
    (0x0020, "@!P0 BRA 0x10", 6, 0b000001, 7),
    (0x0030, "LDS.64 R4, [R2]", 1, 0, 0),               # the outer loop starts here
    (0x0040, "LOP3.LUT R6, R4, 0x77777777, RZ, 0xc0, !PT", 2, 0b000001, 7),  # the inner one here
    (0x0050, "QGMMA.64x8x32.F32.E4M3.E4M3 R24, R28, gdesc[UR8], R24", 1, 0, 7),
    (0x0060, "PRMT R7, R8, R6, R9", 4, 0, 7),
    (0x0070, "@P0 BRA 0x40", 5, 0, 7),
    (0x0080, "@P1 BRA 0x30", 5, 0, 7),
    (0x0090, "EXIT", 5, 0, 7),
]


class SassLoopTest(unittest.TestCase):
    def test_innermost_loop_and_its_control_fields(self):
        functions = sass_loop.read_functions(listing(ROWS))
        self.assertEqual(list(functions), ["_Z6kernelv"])
        loop = sass_loop.wgmma_loop(functions["_Z6kernelv"])
        self.assertEqual([i.address for i in loop], [0x40, 0x50, 0x60, 0x70])
        self.assertEqual([i.stall for i in loop], [2, 1, 4, 5])
        self.assertEqual([i.waits_on for i in loop], [1, 0, 0, 0])
        self.assertEqual([i.opcode for i in loop], ["LOP3", "QGMMA", "PRMT", "BRA"])
        text = sass_loop.summarise("_Z6kernelv", loop)
        self.assertIn("loop of 4 instructions, 1 wgmmas: 12 fixed stall cycles, 1 instructions wait", text)

    def test_a_kernel_without_wgmma_has_no_loop(self):
        rows = [r for r in ROWS if "GMMA" not in r[1]]
        self.assertEqual(sass_loop.wgmma_loop(sass_loop.read_functions(listing(rows))["_Z6kernelv"]), [])

    def test_decodes_a_word_of_ptxas(self):
        # LDS.64 R44, [R54+0x400] of stream_gemm.cu: 4 cycles, sets scoreboard 0, waits on none.
        i = sass_loop.Instruction(0x5700, "LDS.64 R44, [R54+0x400]")
        i.control = 0x000e280000000a00
        self.assertEqual((i.stall, i.waits_on, (i.control >> 46) & 7), (4, 0, 0))


if __name__ == "__main__":
    unittest.main()
