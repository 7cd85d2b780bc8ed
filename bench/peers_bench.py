#!/usr/bin/env python3
"""w4a8moe beside vLLM 0.24.0's compiled MoE kernels: one process, the same weights, the same inputs.

Methods, each computing the whole layer from bf16 hidden states and fp32 router logits (softmax top-k, renormalised)
with its own routing op, and each grouped GEMM alone with its own input format. On the int4 models:

    w4a8moe                this library: w4a8moe.fused_moe; w4a8moe.grouped_gemm on fp8 e4m3 per-token activations
    w4a8moe_exact          the same on the exact-scale packed layout (prepack_weights(..., layout="exact"))
    vllm_cutlass_w4a8      vLLM's CUTLASS W4A8 MoE: signed int4 weights, fp8 group scales and fp32 channel scales,
                           fp8 per-token activations (topk_softmax, fp8 quant, moe_permute, cutlass_w4a8_moe_mm,
                           silu_and_mul, fp8 quant, cutlass_w4a8_moe_mm, moe_unpermute)
    vllm_marlin_w4a16      vLLM's Marlin MoE on uint4b8 weights and bf16 activations (topk_softmax,
                           moe_align_block_size, moe_wna16_marlin_gemm, silu_and_mul, moe_wna16_marlin_gemm, moe_sum)
    vllm_marlin_w4a8_int8  the same with int8 per-token activations (vLLM's VLLM_MARLIN_INPUT_DTYPE=int8): weights
                           repacked for 8-bit activations, the weight scales stored as int16 relative to their maximum,
                           and that maximum / 4096 applied to the activation scales as vLLM's AWQ and dense Marlin
                           paths do (its compressed-tensors MoE path computes it but drops it)

On gpt-oss-120b (MXFP4 experts with biases, gpt-oss's clamped SwiGLU):

    w4a8moe                this library's "mxfp4" layout: fused_moe(..., activation="gpt_oss_swiglu"); grouped_gemm
                           with the biases on fp8 per-token activations (K padded to whole 128-groups)
    vllm_marlin_mxfp4      vLLM's Marlin MoE on float4_e2m1f weights with e8m0 group-32 scales, the biases in
                           Marlin's b_bias and bf16 activations, as vLLM's MXFP4 Marlin backend runs gpt-oss (H and I
                           padded to 3072 and 2944; topk_softmax, moe_align_block_size, moe_wna16_marlin_gemm,
                           swigluoai_and_mul, moe_wna16_marlin_gemm, moe_sum)

Weights: per int4 model one compressed-tensors checkpoint of this rank's experts, random bf16 weights quantised round
to nearest, symmetric, group 128 (scale = max|w| / 7 in bf16): w13 int32 [E, 2I, H/8] (gate rows, then up rows) with
bf16 scales [E, 2I, H/128], w2 int32 [E, H, I/8] with [E, H, I/128]; nibble i of word j holds q + 8 for k = 8j + i.
gpt-oss-120b: one MXFP4 checkpoint as gpt-oss ships it (bench/peers_gpt_oss.py): uniform random e2m1 codes, two a
byte (low nibble = even k), e8m0 scale bytes in 118..122 (2^-9..2^-5) one per 32 inputs, small bf16 biases;
gate_up_proj_blocks uint8 [E, 2I, H/32, 16] with its rows interleaved (gate 2i, up 2i + 1), _scales [E, 2I, H/32],
_bias [E, 2I], down_proj_* [E, H, I/32, 16], [E, H, I/32], [E, H]. Every method converts its model's checkpoint the
way its loader does (w4a8moe.prepack_moe_weights; vLLM's oracle/w4a8.py, int_wna16.py and marlin_utils_fp4.py
conversions, written anew here).

Models: qwen3-30b-a3b (E 128, top-8, H 2048, I 768), mixtral-8x7b (8, top-2, 4096, 14336) and deepseek-v3-ep8, one of
8 expert-parallel ranks of DeepSeek-V3 (256 experts, top-8, 7168, 2048): the rank holds its 32 experts and an
expert_map int32 [256] (global id -> local id or -1); every method computes only local experts and gives the
other ranks' slots zero. gpt-oss-120b (128, top-4, 2880, 2880; MXFP4 experts with biases, bench/peers_gpt_oss.py).

Levels: "layer" (the whole layer), "gemm1" and "gemm2" (the grouped GEMMs alone on the same routing, rows =
tokens * top_k grouped by local expert; Marlin's routing arrays from moe_align_block_size are made outside the timed
region, as are every method's input quantisation, padding and problem sizes).

Timing: after an eager warm-up of every method at every size (Marlin's kernels ship as PTX and the driver compiles
them at first launch, ~80 s per process on a fresh machine; CUDA_CACHE_MAXSIZE is raised so later processes reuse
them), each call is captured in a CUDA graph and replayed with the L2 flushed before each replay (a buffer of
--l2-flush-mb, 256 MiB by default, read, or with --l2-flush write zeroed, outside the event pair): the median of
--iters replays (20 for calls over 5 ms). --path forces our int4 layers onto one path (fused_moe's path), to
compare them with vLLM's in one process.
The streaming read bandwidth is measured in the same run (a sum over 2 GiB), and each layer row carries
"read_once_us", the time to read the active experts' weights once at that bandwidth: int4, one byte per group scale
and 4 bytes per channel scale; for MXFP4 the e2m1 codes (0.5 byte a weight), one e8m0 byte per 32 weights and the
bf16 biases.

Accuracy: rel_err = ||out - ref|| / ||ref|| (the absolute ||out|| where ref is all zero, e.g. an expert-parallel rank
that got no rows). Layer: the fp32 layer from the dequantised weights (q * bf16 scale; MXFP4: e2m1 * 2^(s - 127)) on
the same top-k routing (fp32 activations, SiLU(gate) * up or gpt-oss's SwiGLU with the biases, weighted sum), on up
to 128 sampled tokens. GEMMs: fp32 products of the method's own dequantised input rows (plus the bias for gpt-oss;
GEMM1's columns compared in gate-then-up order), on up to 512 sampled rows.

Output: OUT_DIR/<date>-<card>-peers.json ({"device", "rows": [{"model", "weights", "tokens", "level", "method",
"us", "rel_err", ...}], plus run facts}) and the same name .md (bench/peers_report.py), rewritten after each model;
the layer table is printed last. A failing (model, tokens, level, method) is recorded as a row with "error" and the
run goes on; a vLLM op whose schema differs from vLLM 0.24.0's disables only the methods that call it.

Needs a Hopper GPU, the w4a8moe package (python/README.md) and vLLM 0.24.0's op libraries in --vllm-dir: _C.so and
_moe_C.so, i.e. the wheel's vllm/_C_stable_libtorch.abi3.so and vllm/_moe_C_stable_libtorch.abi3.so (either name is
found). Without a GPU, the package or the libraries it says so and exits with status 0.

    python3 bench/peers_bench.py --vllm-dir DIR --out-dir DIR
                                 [--models qwen3-30b-a3b mixtral-8x7b deepseek-v3-ep8 gpt-oss-120b]
                                 [--tokens 1 4 16 64 128 1024 8192] [--iters 30]
"""

import os

# Read by the driver when CUDA initialises: room in its on-disk JIT cache for Marlin's kernels, which vLLM ships as
# PTX, so that a later process on the same machine skips their ~80 s compilation.
os.environ.setdefault("CUDA_CACHE_MAXSIZE", str(4 << 30))

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402

try:
    import torch
except ImportError:  # reported by main(), which exits 0 as for a machine without a GPU
    torch = None

import peers_report  # noqa: E402  (beside this file)
from peers_checkpoint import Reference, bytes_per_expert, make_checkpoint, relative_error  # noqa: E402
from peers_gpt_oss import GptOssReference, make_mxfp4_checkpoint, mxfp4_bytes_per_expert  # noqa: E402
from peers_methods import Unavailable, W4A8Moe, W4A8MoeMxfp4  # noqa: E402
from peers_model import DEFAULT_MODELS, DEVICE, MODELS, make_case, spread  # noqa: E402
from peers_timing import FLUSH_BYTES, L2_FLUSHES, Timer, measure_hbm  # noqa: E402
from peers_vllm import VllmCutlassW4A8, VllmMarlin  # noqa: E402
from peers_vllm_mxfp4 import VllmMarlinMxfp4  # noqa: E402
from peers_vllm_ops import find_vllm_libraries, unavailable_methods  # noqa: E402

# Also importable from here, as they were before the benchmark was split into modules (checks of the conversions
# import them from peers_bench).
from peers_checkpoint import dequantize, pack_int4, quantize_int4, unpack_int4  # noqa: E402,F401
from peers_model import ModelSpec  # noqa: E402,F401
from peers_vllm import marlin_block_size, marlin_int8_scales, permute_marlin_scales  # noqa: E402,F401
from peers_gpt_oss import dequantize_mxfp4, gate_up_in_layer_order  # noqa: E402,F401
from peers_vllm_mxfp4 import marlin_bias, marlin_mxfp4_scales  # noqa: E402,F401
from peers_vllm_ops import FLOAT4_E2M1F_ID, METHOD_OPS, UINT4B8_ID, VLLM_SCHEMAS  # noqa: E402,F401

LEVELS = ("layer", "gemm1", "gemm2")
LAYER_SAMPLE_TOKENS = 128
GEMM_SAMPLE_ROWS = 512


# --- The run -------------------------------------------------------------------------------------------------------

class Skipped(Exception):
    """A case where a method has nothing to compute (an expert-parallel rank that got no rows): recorded as such."""


class CudaContextLost(RuntimeError):
    """A CUDA error that poisons the context (e.g. an illegal address): nothing after it can be measured."""


def first_line(error):
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def cuda_alive():
    try:
        torch.cuda.synchronize()
        return True
    except Exception:  # noqa: BLE001
        return False


def make_weights(spec, generator):
    """(checkpoint, fp32 reference) in the model's weight format."""
    if spec.weight_format == "mxfp4":
        ckpt = make_mxfp4_checkpoint(spec, generator)
        return ckpt, GptOssReference(spec, ckpt)
    ckpt = make_checkpoint(spec, generator)
    return ckpt, Reference(spec, ckpt)


def expert_read_bytes(spec):
    """Bytes of one expert read once, in the model's weight format (the layer rows' read_once_us)."""
    return mxfp4_bytes_per_expert(spec) if spec.weight_format == "mxfp4" else bytes_per_expert(spec)


def method_builders(spec, ckpt, path):
    """{method: build} for the methods that take the model's weight format: the int4 ones for the int4 checkpoints
    (our layer on fused_moe's `path`), w4a8moe and Marlin MXFP4 for gpt-oss's MXFP4 experts."""
    if spec.weight_format == "mxfp4":
        return {
            "w4a8moe": lambda: W4A8MoeMxfp4(spec, ckpt),
            "vllm_marlin_mxfp4": lambda: VllmMarlinMxfp4(spec, ckpt),
        }
    return {
        "w4a8moe": lambda: W4A8Moe(spec, ckpt, path=path),
        "w4a8moe_exact": lambda: W4A8Moe(spec, ckpt, layout="exact", path=path),
        "vllm_cutlass_w4a8": lambda: VllmCutlassW4A8(spec, ckpt),
        "vllm_marlin_w4a16": lambda: VllmMarlin(spec, ckpt, int8=False),
        "vllm_marlin_w4a8_int8": lambda: VllmMarlin(spec, ckpt, int8=True),
    }


def build_methods(spec, ckpt, unavailable, path):
    """Every method's converted weights for one model; a method that cannot be built becomes Unavailable."""
    builders = method_builders(spec, ckpt, path)
    methods = []
    for name, build in builders.items():
        if name in unavailable:
            methods.append(Unavailable(name, unavailable[name]))
            continue
        try:
            method = build()
            torch.cuda.synchronize()  # a conversion op's asynchronous error belongs to this method
            methods.append(method)
        except Exception as error:  # noqa: BLE001  (one method's failure must not end the run)
            if not cuda_alive():
                raise CudaContextLost(f"{spec.name}, converting the weights for {name}")
            methods.append(Unavailable(name, f"weight conversion failed: {first_line(error)}"))
    return methods


def build_call(method, level, case):
    """(the zero-argument call to time, its GemmCall at the GEMM levels or None for the layer)."""
    if level == "layer":
        return method.layer(case), None
    if case.rows == 0:
        raise Skipped("no token routed to this rank's experts")
    call = method.gemm(level, case)
    return call.run, call


def check(level, case, reference, call, out):
    """rel_err of a timed call's output against the fp32 reference, on sampled tokens (layer) or rows (GEMMs)."""
    if level == "layer":
        tokens = spread(case.tokens, LAYER_SAMPLE_TOKENS)
        return relative_error(out[tokens], reference.layer(case, tokens))
    rows = spread(case.rows, GEMM_SAMPLE_ROWS)
    ref = reference.gemm(level, call.rows_in(rows), case.row_expert[rows])
    return relative_error(call.rows_out(out, rows), ref)


def warm_up(spec, methods, token_counts, expert_map):
    """One eager call of every method's layer and GEMMs at every size before anything is timed: Marlin's PTX is
    compiled here (the first time, ~80 s), not inside a timing."""
    start = time.time()
    for tokens in token_counts:
        case = make_case(spec, tokens, expert_map)
        for level in LEVELS:
            for method in methods:
                try:
                    build_call(method, level, case)[0]()
                    torch.cuda.synchronize()
                except Exception:  # noqa: BLE001  (reported by the timed pass, which meets it again)
                    if not cuda_alive():
                        raise CudaContextLost(f"{spec.name}, {tokens} tokens, {level}, {method.name} warm-up")
        del case
    print(f"{spec.name}: warm-up of every method and size: {time.time() - start:.1f} s", flush=True)


def measure_case(spec, case, methods, reference, timer, read_gbps, rows):
    """Appends a row per (level, method) to `rows` as each is measured, so a lost context keeps what was done."""
    read_once_us = case.active_experts * expert_read_bytes(spec) / (read_gbps * 1e3)
    for level in LEVELS:
        for method in methods:
            row = {"model": spec.name, "weights": spec.weight_format, "tokens": case.tokens, "level": level,
                   "method": method.name, "us": None, "rel_err": None, "active_experts": case.active_experts,
                   "rows": case.rows}
            if level == "layer":
                row["read_once_us"] = round(read_once_us, 2)
            try:
                fn, call = build_call(method, level, case)
                us, out, iters = timer.measure(fn)
                rel_err = check(level, case, reference, call, out)
                if not (math.isfinite(us) and math.isfinite(rel_err)):
                    raise RuntimeError(f"non-finite result: {us} us, rel_err {rel_err}")
                row.update(us=round(us, 2), rel_err=round(rel_err, 6), iters=iters)
                note = f"{us:9.1f} us  rel_err {100 * rel_err:6.2f}%"
            except Skipped as reason:
                row["skipped"] = str(reason)
                note = f"skipped: {reason}"
            except Exception as error:  # noqa: BLE001  (recorded as an error row; the run goes on)
                row["error"] = first_line(error)
                note = row["error"]
            rows.append(row)
            print(f"  {spec.name:16} {case.tokens:5} {level:6} {method.name:22} {note}", flush=True)
            if "error" in row and not cuda_alive():
                raise CudaContextLost(f"{spec.name}, {case.tokens} tokens, {level}, {method.name}: {note}")


def run_model(spec, token_counts, timer, read_gbps, unavailable, rows, path="auto"):
    """Makes the model's checkpoint, converts it for every method, warms them up, and measures every size into
    `rows`."""
    start = time.time()
    generator = torch.Generator(device=DEVICE).manual_seed(zlib.crc32(spec.name.encode()))
    ckpt, reference = make_weights(spec, generator)
    methods = build_methods(spec, ckpt, unavailable, path)
    del ckpt
    print(f"{spec.name}: E={spec.experts} ({spec.local_experts} local) top-{spec.top_k} H={spec.hidden} "
          f"I={spec.inter} {spec.weight_format}; weights made and converted in {time.time() - start:.1f} s",
          flush=True)
    for method in methods:
        if isinstance(method, Unavailable):
            print(f"{spec.name}: {method.name} unavailable: {method.reason}", flush=True)
    expert_map = spec.expert_map()
    warm_up(spec, methods, token_counts, expert_map)
    for tokens in token_counts:
        case = make_case(spec, tokens, expert_map)
        try:
            measure_case(spec, case, methods, reference, timer, read_gbps, rows)
        finally:
            del case
            gc.collect()
    del methods, reference
    gc.collect()
    torch.cuda.empty_cache()
    print(f"{spec.name}: done in {time.time() - start:.0f} s", flush=True)


def write_results(result, out_dir):
    """Writes OUT_DIR/<date>-<card>-peers.json and .md; returns their common path without the suffix."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"{result['date']}-{peers_report.card_name(result['device'])}-peers")
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    markdown = peers_report.render(result)
    with open(stem + ".md", "w") as f:
        f.write(markdown)
    return stem


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-dir", help="folder holding vLLM 0.24.0's _C.so and _moe_C.so")
    parser.add_argument("--out-dir", default=".", help="where the JSON and markdown go (default: .)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(DEFAULT_MODELS),
                        help=f"default: {' '.join(DEFAULT_MODELS)}")
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 4, 16, 64, 128, 1024, 8192])
    parser.add_argument("--iters", type=int, default=30, help="timed replays per call (20 for calls over 5 ms)")
    parser.add_argument("--l2-flush", choices=L2_FLUSHES, default="read",
                        help="how L2 is flushed before each replay: by reading (default) or writing a buffer")
    parser.add_argument("--l2-flush-mb", type=int, default=FLUSH_BYTES >> 20,
                        help=f"the flush buffer's MiB (default {FLUSH_BYTES >> 20}; the layer benchmark's is 2x L2)")
    parser.add_argument("--path", choices=("auto", "staged", "one_launch"), default="auto",
                        help="our int4 layers' path (fused_moe's path): its own choice (default), or one forced")
    args = parser.parse_args(argv)
    if args.l2_flush_mb < 1:
        parser.error(f"--l2-flush-mb {args.l2_flush_mb}: must be at least 1")
    return args


def skip(reason):
    print(f"peers_bench: skipped: {reason}", flush=True)
    sys.exit(0)


def load_environment(args):
    """Imports and loads what the run needs, or skips (exit 0) saying what is missing."""
    if torch is None:
        skip("PyTorch is not installed")
    if not torch.cuda.is_available():
        skip("no CUDA GPU")
    try:
        import w4a8moe  # noqa: F401  (the methods use it; a failed import is a reason to skip)
    except Exception as error:  # noqa: BLE001  (an unbuilt or mismatched extension fails in several ways)
        skip(f"the w4a8moe package cannot be imported ({first_line(error)}); python/README.md builds it")
    libraries = find_vllm_libraries(args.vllm_dir)
    if libraries is None:
        where = f"in --vllm-dir {args.vllm_dir}" if args.vllm_dir else "given (no --vllm-dir)"
        skip(f"vLLM's op libraries (_C.so and _moe_C.so) are not {where}")
    for path in libraries:
        try:
            torch.ops.load_library(path)
        except Exception as error:  # noqa: BLE001
            sys.exit(f"peers_bench: cannot load {path}: {first_line(error)} (vLLM 0.24.0 is built for torch 2.11 "
                     "and CUDA 13)")
    return libraries


def main(argv=None):
    args = parse_args(argv)
    libraries = load_environment(args)
    torch.backends.cuda.matmul.allow_tf32 = False  # the reference is fp32
    unavailable = unavailable_methods()
    device = torch.cuda.get_device_name()
    print(f"device: {device}, torch {torch.__version__}, CUDA {torch.version.cuda}; vLLM ops: {', '.join(libraries)}")
    for method, reason in unavailable.items():
        print(f"{method} unavailable: {reason}")
    read_gbps, copy_gbps = measure_hbm()
    print(f"streaming read {read_gbps:.0f} GB/s, copy {copy_gbps:.0f} GB/s (read + write)", flush=True)
    flush_bytes = args.l2_flush_mb << 20
    result = {"device": device, "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "cuda": torch.version.cuda, "hbm_read_gbps": round(read_gbps, 1), "hbm_copy_gbps": round(copy_gbps, 1),
              "l2_flush": args.l2_flush, "l2_flush_bytes": flush_bytes, "path": args.path,
              "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]), "rows": []}
    timer = Timer(args.iters, args.l2_flush, flush_bytes)
    status = 0
    start = time.time()
    try:
        for model in args.models:
            run_model(MODELS[model], args.tokens, timer, read_gbps, unavailable, result["rows"], args.path)
            write_results(result, args.out_dir)
    except CudaContextLost as error:
        print(f"peers_bench: stopped, the CUDA context is lost after {error}", flush=True)
        status = 1
    stem = write_results(result, args.out_dir)
    print(f"\nwrote {stem}.json and {stem}.md in {time.time() - start:.0f} s\n")
    print(f"Layer, µs ({device}; fastest vLLM / ours below 1 in bold: a vLLM kernel is faster)\n")
    print(peers_report.layer_table(result["rows"]))
    return status


if __name__ == "__main__":
    sys.exit(main())
