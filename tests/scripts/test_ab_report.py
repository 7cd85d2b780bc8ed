"""bench/ab_report.py and bench/gemm_ab_report.py on runs made up here (medians per build, a path one build did not
time, a case only one build has, configs that differ, a failed round or timing left out, runs from two cards
refused), and scripts/bench-ab.sh end to end for both benchmarks (through scripts/layer-ab.sh for the layer) with
stand-in benchmarks (two builds, alternating rounds, the report in $OUT named by the runs' card)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import ab_report  # noqa: E402
import gemm_ab_report  # noqa: E402


def row(model, tokens, total, one_launch=0.0, gemm1=10.0, configs=("64x8_stream", "64x8_stream")):
    return {"model": model, "tokens": tokens, "layout": "lookup", "total_graph_us": total,
            "staged_total_graph_us": total, "one_launch_total_graph_us": one_launch,
            "stages_us": {"route": 5.0, "gemm1": gemm1}, "gemm1_config": configs[0], "gemm2_config": configs[1]}


def write_run(runs_dir, name, rows, device="card", header=None):
    """A run folder as scripts/bench-ab.sh leaves it: one benchmark JSON (the layer benchmark's header by default)."""
    os.makedirs(os.path.join(runs_dir, name))
    with open(os.path.join(runs_dir, name, "result.json"), "w") as f:
        json.dump({"device": device, **(header or {"l2_flush": "read"}), "rows": rows}, f)


class InTempDir(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)


class AbReportTest(InTempDir):

    def test_medians_differences_and_missing_values(self):
        for r, (base, new) in enumerate([(30.0, 28.0), (31.0, 27.0), (50.0, 26.0)], start=1):
            write_run(self.dir, f"base-{r}", [row("m", 1, base, gemm1=10.0), row("m", 4, 60.0)])
            split_k = ("64x8_stream", "64x8_splitk_stream")
            write_run(self.dir, f"new-{r}", [row("m", 1, new, gemm1=7.0, configs=split_k)])
        os.makedirs(os.path.join(self.dir, "new-4"))  # a round whose benchmark failed: left out
        summary = ab_report.summarize(ab_report.load_runs(self.dir))
        one, four = summary
        self.assertEqual((one["tokens"], four["tokens"]), (1, 4))
        self.assertEqual(one["total_graph_us"], {"base": 31.0, "new": 27.0})  # medians, not means
        self.assertEqual(ab_report.difference(one["total_graph_us"]), -4.0)
        self.assertIsNone(one["one_launch_total_graph_us"]["base"])  # 0: the path was not timed
        self.assertEqual(four["total_graph_us"], {"base": 60.0, "new": None})  # only one build has the case
        self.assertIsNone(ab_report.difference(four["total_graph_us"]))
        self.assertEqual(one["rounds"], {"base": 3, "new": 3})
        text = ab_report.markdown(summary, "card", "read", "T")
        self.assertIn("| m | 1 | lookup | 31.0 | 27.0 | -4.0 |", text)
        self.assertIn("gemm1 10.0 -> 7.0", text)  # the stage that moved most
        self.assertIn("64x8_stream / 64x8_stream -> 64x8_stream / 64x8_splitk_stream", text)
        self.assertIn("| m | 4 | lookup | 60.0 | - | - |", text)
        self.assertIn("flushed by reading;", text)
        self.assertIn("flushed by reading and the SMs' instruction caches cleared;",
                      ab_report.markdown(summary, "card", "read", "T", code_cleared=True))

    def test_routing_draws_are_cases_of_their_own(self):
        for r in (1, 2):
            for build, delta in (("base", 0.0), ("new", -1.0)):
                rows = [dict(row("m", 1, 20.0 + delta), draw=0, active_experts=1),
                        dict(row("m", 1, 40.0 + 2 * delta), draw=1, active_experts=3)]
                write_run(self.dir, f"{build}-{r}", rows)
        summary = ab_report.summarize(ab_report.load_runs(self.dir))
        self.assertEqual([(e["draw"], e["active_experts"]) for e in summary], [(0, [1]), (1, [3])])
        self.assertEqual(summary[1]["total_graph_us"], {"base": 40.0, "new": 38.0})
        text = ab_report.markdown(summary, "card", "read", "T")
        self.assertIn("| m (draw 0, 1 experts) | 1 | lookup | 20.0 | 19.0 | -1.0 |", text)
        self.assertIn("| m (draw 1, 3 experts) | 1 | lookup | 40.0 | 38.0 | -2.0 |", text)
        # Only the default draw (every run without --draws): the plain model name.
        self.assertIn("| m | 1 | lookup | 20.0 | 19.0 |", ab_report.markdown(summary[:1], "card", "read", "T"))

    def test_runs_from_two_cards_or_one_build_only_are_refused(self):
        write_run(self.dir, "base-1", [row("m", 1, 30.0)], device="card A")
        with self.assertRaisesRegex(ValueError, "no run of build 'new'"):
            ab_report.load_runs(self.dir)
        write_run(self.dir, "new-1", [row("m", 1, 30.0)], device="card B")
        with self.assertRaisesRegex(ValueError, "different cards"):
            ab_report.load_runs(self.dir)
        self.assertEqual(ab_report.main([self.dir]), 1)

    def run_ab(self, script_args, bench, results, env_extra=None):
        """scripts/<script_args[0]> with two stand-in builds of `bench`, each writing results[build] as its JSON, and
        env_extra in its environment: checks the order the builds ran in; returns the report files in $OUT, the first
        report's JSON, the script's output and the runs' command lines ("build args...")."""
        if not (shutil.which("xz") and shutil.which("tar") and shutil.which("bash")):
            self.skipTest("needs bash, tar and xz")
        order = os.path.join(self.dir, "order.log")
        archives = []
        for build in ("base", "new"):
            bin_dir = os.path.join(self.dir, build, "bin")
            os.makedirs(bin_dir)
            # A stand-in benchmark: logs its build and arguments, writes its JSON into --out.
            with open(os.path.join(bin_dir, bench), "w") as f:
                f.write("#!/bin/sh\n"
                        f"echo \"{build} $*\" >> {order}\n"
                        "while [ $# -gt 1 ]; do [ \"$1\" = --out ] && out=$2; shift; done\n"
                        f"echo '{json.dumps(results[build])}' > \"$out/result.json\"\n")
            os.chmod(os.path.join(bin_dir, bench), 0o755)
            archive = os.path.join(self.dir, f"{build}.tar.xz")
            subprocess.run(f"tar -C {os.path.join(self.dir, build)} -cf - bin | xz > {archive}", shell=True,
                           check=True)
            archives.append(archive)
        out = os.path.join(self.dir, "out")
        env = dict(os.environ, OUT=out, ROUNDS="2", **(env_extra or {}))
        script = os.path.join(ROOT, "scripts", script_args[0])
        done = subprocess.run([script, *script_args[1:], *archives, "--models", "m", "--tokens", "1"], env=env,
                              capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        with open(order) as f:
            runs = [line.strip() for line in f]
        self.assertEqual([line.split()[0] for line in runs], ["base", "new", "base", "new"])
        reports = sorted(os.listdir(out))
        self.assertEqual(len(reports), 2, reports)
        with open(os.path.join(out, reports[0])) as f:
            return reports, json.load(f), done.stdout, runs

    def test_layer_ab_script_alternates_the_builds_and_writes_the_report(self):
        results = {build: {"device": "NVIDIA Test Card", "l2_flush": "read", "rows": [row("m", 1, total)]}
                   for build, total in (("base", 30.0), ("new", 25.0))}
        reports, result, printed, runs = self.run_ab(["layer-ab.sh"], "w4a8moe_moe_bench", results,
                                                     {"NEW_ARGS": "--gemm1-config 64x8_splitk_stream --draws 2"})
        self.assertTrue(reports[0].endswith("-nvidia-test-card-layer-ab.json"), reports)
        self.assertEqual(result["summary"][0]["total_graph_us"], {"base": 30.0, "new": 25.0})
        self.assertEqual([r["round"] for r in result["runs"]["new"]], [1, 2])
        self.assertIn("| m | 1 | lookup | 30.0 | 25.0 | -5.0 |", printed)
        # NEW_ARGS reach the new build's runs only, after the common arguments.
        for line in runs:
            extra = "--gemm1-config 64x8_splitk_stream --draws 2 --out" in line
            self.assertEqual(extra, line.startswith("new "), line)
            self.assertIn("--models m --tokens 1", line)

    def test_gemm_ab_script_alternates_the_builds_and_writes_the_report(self):
        results = {build: {"device": "NVIDIA Test Card", "hbm_read_gbps": 3000.0, "rows": [gemm_row(us)]}
                   for build, us in (("base", 40.0), ("new", 30.0))}
        reports, result, printed, _ = self.run_ab(["bench-ab.sh", "gemm"], "w4a8moe_gemm_bench", results)
        self.assertTrue(reports[0].endswith("-nvidia-test-card-gemm-ab.json"), reports)
        self.assertEqual(result["summary"][0]["us"], {"base": 40.0, "new": 30.0})
        self.assertEqual([r["hbm_read_gbps"] for r in result["runs"]["base"]], [3000.0, 3000.0])
        self.assertIn("| m | 1 | 1 | uniform | 2 | w4a8 | 40.0 | 30.0 | 0.750 | 64x8_stream |", printed)

    def test_unknown_benchmark_is_refused(self):
        script = os.path.join(ROOT, "scripts", "bench-ab.sh")
        archive = os.path.join(self.dir, "a.tar.xz")
        open(archive, "w").close()
        done = subprocess.run([script, "sweep", archive, archive], capture_output=True, text=True)
        self.assertEqual(done.returncode, 2)
        self.assertIn("bench-ab.sh gemm", done.stdout)


def gemm_row(us, method="w4a8", config="64x8_stream", tokens=1):
    return {"model": "m", "gemm": 1, "tokens": tokens, "routing": "uniform", "experts": 8, "active_experts": 2,
            "n": 256, "k": 512, "rows": 2, "method": method, "config": config, "us": us}


def write_gemm_run(runs_dir, name, rows, device="card"):
    write_run(runs_dir, name, rows, device, header={"hbm_read_gbps": 3000.0})


class GemmAbReportTest(InTempDir):

    def test_medians_ratios_failed_timings_and_picks_that_differ(self):
        for r, (base, new) in enumerate([(40.0, 30.0), (42.0, 31.0), (90.0, -1.0)], start=1):
            write_gemm_run(self.dir, f"base-{r}", [gemm_row(base), gemm_row(20.0, tokens=4)])
            write_gemm_run(self.dir, f"new-{r}", [gemm_row(new, config="64x8_splitk_stream")])
        summary = gemm_ab_report.summarize(ab_report.load_runs(self.dir))
        one, four = summary
        self.assertEqual(one["us"], {"base": 42.0, "new": 30.5})  # medians; the failed timing (-1) left out
        self.assertEqual(one["rounds"], {"base": 3, "new": 2})
        self.assertAlmostEqual(gemm_ab_report.ratio(one["us"]), 30.5 / 42.0)
        self.assertEqual(four["us"], {"base": 20.0, "new": None})  # only one build has the case
        self.assertIsNone(gemm_ab_report.ratio(four["us"]))
        text = gemm_ab_report.markdown(summary, "card", "T")
        self.assertIn("| m | 1 | 1 | uniform | 2 | w4a8 | 42.0 | 30.5 | 0.726 | 64x8_stream -> 64x8_splitk_stream |",
                      text)
        self.assertIn("| m | 1 | 4 | uniform | 2 | w4a8 | 20.0 | - | - | 64x8_stream -> - |", text)

    def test_runs_from_two_cards_are_refused(self):
        write_gemm_run(self.dir, "base-1", [gemm_row(40.0)], device="card A")
        write_gemm_run(self.dir, "new-1", [gemm_row(40.0)], device="card B")
        self.assertEqual(gemm_ab_report.main([self.dir]), 1)


if __name__ == "__main__":
    unittest.main()
