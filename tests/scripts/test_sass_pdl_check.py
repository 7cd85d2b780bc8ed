"""scripts/sass_pdl_check.py on made-up cuobjdump listings: each PDL rule is caught where it is broken (the launch
before the wait, but for the SiLU kernel's, an L1 load before it, a non-coherent load between two waits, the permute
kernel's failure of bench/NOTES.md §71) and kept quiet where it holds; kernels that never wait are not looked at."""
import contextlib
import io
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import sass_pdl_check  # noqa: E402
from sass_loop import read_functions  # noqa: E402


def listing(kernels):
    """A cuobjdump -sass listing of {name: [instruction text]}."""
    lines = ["\tcode for sm_90a"]
    for name, texts in kernels.items():
        lines.append(f"\t\tFunction : {name}")
        for n, text in enumerate(texts):
            lines.append(f"        /*{16 * n:04x}*/                   {text} ;   /* 0x000000000000794d */")
            lines.append("                                                       /* 0x000fe20000000f00 */")
    return lines


def breaks(texts):
    functions = read_functions(listing({"_Z1kv": texts}))
    return sass_pdl_check.violations("_Z1kv", functions["_Z1kv"])


class SassPdlCheck(unittest.TestCase):
    def test_a_kernel_keeping_the_rules_passes(self):
        self.assertEqual(breaks(["LDC R1, c[0x0][0x28]", "LDG.E.128.STRONG.GPU R4, desc[UR4][R2.64]", "ACQBULK",
                                 "PREEXIT", "LDG.E.CONSTANT R8, desc[UR4][R6.64]", "LDG.E R9, desc[UR4][R6.64]",
                                 "EXIT"]), [])

    def test_the_next_launch_allowed_before_the_wait_is_caught(self):
        found = breaks(["@P0 PREEXIT", "ACQBULK", "EXIT"])
        self.assertEqual(len(found), 1)
        self.assertIn("before its own wait", found[0])

    def test_only_the_silu_kernel_may_let_the_next_launch_before_its_wait(self):
        silu = "_ZN7w4a8moe3moe24silu_mul_quantize_kernelILi1EEEvv"
        functions = read_functions(listing({silu: ["@P0 PREEXIT", "ACQBULK", "LDG.E R4, desc[UR4][R2.64]", "EXIT"]}))
        self.assertEqual(sass_pdl_check.violations(silu, functions[silu]), [])
        functions = read_functions(listing({silu: ["LDG.E R4, desc[UR4][R2.64]", "PREEXIT", "ACQBULK", "EXIT"]}))
        found = sass_pdl_check.violations(silu, functions[silu])
        self.assertEqual(len(found), 1)  # its loads keep the rule
        self.assertIn("through L1 before the wait", found[0])

    def test_loads_through_l1_before_the_first_wait_are_caught(self):
        found = breaks(["LDG.E R4, desc[UR4][R2.64]", "@!P1 LDG.E.CONSTANT R5, desc[UR4][R2.64]", "ACQBULK", "EXIT"])
        self.assertEqual(len(found), 2)
        self.assertTrue(all("through L1 before the wait" in line for line in found))

    def test_copies_into_shared_memory_before_the_wait_only_through_l2(self):
        # Copies into shared memory through L2 only (cp.async.cg) pass; through L1 (cp.async.ca) they do not.
        self.assertEqual(breaks(["LDGSTS.E.BYPASS.128 [R7], desc[UR14][R20.64]", "ACQBULK", "EXIT"]), [])
        found = breaks(["LDGSTS.E [R7+0x40], desc[UR14][R20.64]", "ACQBULK", "EXIT"])
        self.assertEqual(len(found), 1)
        self.assertIn("through L1 before the wait", found[0])

    def test_a_non_coherent_load_hoisted_above_a_later_wait_is_caught(self):
        # The permute kernel of §71: a wait on the skip path, then the row's L2 loads and the rows' non-coherent
        # load ahead of the second wait.
        found = breaks(["@!P0 BRA 0x40", "ACQBULK", "LDG.E R4, desc[UR4][R2.64]", "EXIT",
                        "LDG.E.128.STRONG.GPU R8, desc[UR4][R6.64]", "@!P1 LDG.E.CONSTANT R18, desc[UR4][R16.64]",
                        "ACQBULK", "EXIT"])
        self.assertEqual(len(found), 1)
        self.assertIn("00050 @!P1 LDG.E.CONSTANT", found[0])
        self.assertIn("non-coherent load before a wait", found[0])

    def test_kernels_that_never_wait_are_not_read(self):
        lines = listing({"_Z6nowaitv": ["PREEXIT", "LDG.E.CONSTANT R4, desc[UR4][R2.64]", "EXIT"],
                         "_Z4waitv": ["ACQBULK", "EXIT"]})
        self.assertEqual(self.run_main(lines), (0, "sass_pdl_check: 1 kernels wait on a previous grid; 0 rule breaks"))

    def test_main_fails_on_a_break_and_skips_without_cuobjdump(self):
        status, last = self.run_main(listing({"_Z1kv": ["PREEXIT", "ACQBULK", "EXIT"]}))
        self.assertEqual((status, last), (1, "sass_pdl_check: 1 kernels wait on a previous grid; 1 rule breaks"))
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as skipped:
            sass_pdl_check.main(["/nonexistent/binary", "--cuobjdump", "/nonexistent/cuobjdump"])
        self.assertEqual(skipped.exception.code, 77)

    def run_main(self, lines):
        with tempfile.NamedTemporaryFile("w", suffix=".sass", delete=False) as f:
            f.write("\n".join(lines) + "\n")
        try:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                status = sass_pdl_check.main(["--sass", f.name])
        finally:
            os.unlink(f.name)
        return status, out.getvalue().strip().splitlines()[-1]


if __name__ == "__main__":
    unittest.main()
