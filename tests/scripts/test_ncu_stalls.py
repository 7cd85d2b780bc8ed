"""scripts/ncu_stalls.py on a source page as Nsight Compute exports it (notes before the table, quoted fields,
thousands separators), with the columns in another order than the parser's first guess."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import ncu_stalls  # noqa: E402

HEADER = ('"# Address","Source","Instructions Executed","Warp Stall Sampling (Not-issued Samples)",'
          '"Warp Stall Sampling (All Samples)"')
PAGE = """==PROF== Disconnected from process 123
""" + HEADER + """
"0x7f0","@!P0 SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [R47+URZ], R46","1,024","2,900","3,000"
"0x800","LDS.64 R44, [R54+0x400]","1,024","100","400"
"0x810","PRMT R82, R58, R83, R59","8,192","50","500"
"0x820","PRMT R79, R58, R81, R59","8,192","0","100"
"0x830","WARPGROUP.DEPBAR.LE gsb0, 0x0","1,024","900","1,000"
"""


class NcuStallsTest(unittest.TestCase):
    def test_columns_by_name_and_shares(self):
        rows = list(ncu_stalls.read_rows(PAGE.splitlines()))
        self.assertEqual(len(rows), 5)
        self.assertEqual(rows[0], ("@!P0 SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [R47+URZ], R46", 3000.0, 2900.0))
        text = ncu_stalls.summarise(rows, top=3)
        self.assertIn("5 instructions, 5000 samples", text)
        lines = text.splitlines()
        # The top instruction is the barrier wait, 60 % of the samples, 58 % not issued.
        self.assertIn("60.0 %   58.0 %  @!P0 SYNCS.PHASECHK", lines[2])
        self.assertIn("by opcode:", text)
        by_opcode = lines[lines.index("by opcode:") + 1:]
        self.assertEqual(by_opcode[0].split(), ["60.0", "%", "SYNCS.PHASECHK"])
        self.assertEqual(by_opcode[1].split(), ["20.0", "%", "WARPGROUP.DEPBAR"])
        self.assertEqual(by_opcode[2].split(), ["12.0", "%", "PRMT"])

    def test_opcode_keeps_the_operation_of_barriers(self):
        self.assertEqual(ncu_stalls.opcode("@P1 BRA.U.ANY 0x2fc0"), "BRA")
        self.assertEqual(ncu_stalls.opcode("QGMMA.64x8x32.F32.E4M3.E4M3 R24, R28, gdesc[UR8], R24"), "QGMMA")
        self.assertEqual(ncu_stalls.opcode("SYNCS.ARRIVE.TRANS64.A1T0 RZ, [R22+URZ+0x40], RZ"), "SYNCS.ARRIVE")

    def test_a_page_without_sampling_is_an_error_naming_the_section(self):
        with self.assertRaisesRegex(ValueError, "SourceCounters"):
            list(ncu_stalls.read_rows(['"# Address","Source"', '"0x0","NOP"']))


if __name__ == "__main__":
    unittest.main()
