"""The W4A8 fused MoE layer (w4a8moe.fused_moe) against MoE layers composed from PyTorch ops, on the same routing:

    w8a8  fp8 e4m3 weights with per-channel scales, per-token fp8 activations, torch._scaled_grouped_mm
    bf16  bf16 weights and activations, torch._grouped_mm

Each composed layer does what the fused one does: group the (token, slot) rows by expert (stable argsort),
gather the tokens, GEMM1, SiLU(gate) * up, GEMM2, and the top-k weighted sum. Shapes default to Qwen3-30B-A3B
(E=128, top-8, H=2048, I=768). Timed with CUDA events after a warm-up, the median of the iterations, both as eager
calls and as replays of a captured CUDA graph (how engines run decode). Needs a Hopper GPU and the w4a8moe package
(python/README.md).

    python3 bench/torch_bench.py [--tokens 16 128 1024 8192] [--iters 50]
"""

import argparse

import torch

import w4a8moe
from peers_timing import capture, median_event_ms  # bench/ is on sys.path: this runs as a script


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 128, 1024, 8192])
    parser.add_argument("--experts", type=int, default=128)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--inter", type=int, default=768)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iters", type=int, default=50)
    return parser.parse_args()


class ComposedMoe:
    """A MoE layer from PyTorch ops. weight_dtype float8_e4m3fn: W8A8 with _scaled_grouped_mm; bfloat16: BF16
    with _grouped_mm. Weights are random: the timing does not depend on their values."""

    def __init__(self, num_experts, hidden, inter, weight_dtype):
        self.num_experts, self.inter, self.fp8 = num_experts, inter, weight_dtype == torch.float8_e4m3fn
        w13 = torch.randn(num_experts, 2 * inter, hidden, device="cuda") * 0.02
        w2 = torch.randn(num_experts, hidden, inter, device="cuda") * 0.02
        if self.fp8:
            self.w13, self.w13_scale = self._quantize_channels(w13)
            self.w2, self.w2_scale = self._quantize_channels(w2)
        else:
            # The grouped GEMMs take [E, K, N] column-major: the [E, N, K] weights, transposed in place.
            self.w13, self.w13_scale = w13.to(torch.bfloat16).transpose(1, 2), None
            self.w2, self.w2_scale = w2.to(torch.bfloat16).transpose(1, 2), None

    @staticmethod
    def _quantize_channels(w):
        scale = w.abs().amax(-1) / 448.0
        q = (w / scale[..., None]).to(torch.float8_e4m3fn)
        return q.transpose(1, 2), scale.float()

    def _gemm(self, act, act_scale, weights, weight_scale, offsets):
        if self.fp8:
            return torch._scaled_grouped_mm(act, weights, act_scale, weight_scale, offs=offsets,
                                            out_dtype=torch.bfloat16, use_fast_accum=True)
        return torch._grouped_mm(act, weights, offs=offsets)

    def __call__(self, hidden, topk_ids, topk_weights):
        tokens, top_k = topk_ids.shape
        slots = topk_ids.flatten()
        order = torch.argsort(slots, stable=True)  # rows grouped by expert, each expert's rows in slot order
        counts = torch.zeros(self.num_experts, dtype=torch.int32, device=hidden.device)
        counts.scatter_add_(0, slots.long(), torch.ones_like(slots))
        offsets = counts.cumsum(0, dtype=torch.int32)  # end of each expert's rows
        token_of_row = order // top_k
        if self.fp8:  # each token quantised once, then copied to its k rows
            act, scale = w4a8moe.quantize_per_token_fp8(hidden)
            act = act.view(torch.uint8)[token_of_row].view(torch.float8_e4m3fn)  # gathered as bytes
            scale = scale[token_of_row]
        else:
            act, scale = hidden[token_of_row], None
        gate_up = self._gemm(act, scale, self.w13, self.w13_scale, offsets)
        mid = torch.nn.functional.silu(gate_up[:, :self.inter]) * gate_up[:, self.inter:]
        if self.fp8:
            mid, scale = w4a8moe.quantize_per_token_fp8(mid)
        down = self._gemm(mid, scale, self.w2, self.w2_scale, offsets)
        weighted = down * topk_weights.flatten()[order, None].to(down.dtype)
        per_slot = torch.empty_like(weighted).index_copy_(0, order, weighted)
        return per_slot.view(tokens, top_k, -1).sum(1)


def w4a8_layer(num_experts, hidden, inter):
    """Random int4 weights (every 32-bit word is a valid set of 8 offset-binary nibbles) and bf16 scales."""
    def weights(n, k):
        int32 = torch.iinfo(torch.int32)
        packed = torch.randint(int32.min, int32.max, (num_experts, n, k // 8), dtype=torch.int32, device="cuda")
        scales = (torch.rand(num_experts, n, k // 128, device="cuda") * 0.01 + 0.001).to(torch.bfloat16)
        return packed, scales

    return w4a8moe.prepack_moe_weights(*weights(2 * inter, hidden), *weights(hidden, inter))


def main():
    args = parse_args()
    torch.manual_seed(0)
    e, k, h, inter = args.experts, args.top_k, args.hidden, args.inter
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    print(f"MoE E={e} top-{k} H={h} I={inter}; median of {args.iters} iterations after {args.warmup} warm-up")

    layers = {"w4a8": w4a8_layer(e, h, inter)}
    missing = [name for name in ("_scaled_grouped_mm", "_grouped_mm") if not hasattr(torch, name)]
    if missing:
        print(f"torch {torch.__version__} lacks torch.{', torch.'.join(missing)}: those baselines are skipped")
    if "_scaled_grouped_mm" not in missing:
        layers["w8a8"] = ComposedMoe(e, h, inter, torch.float8_e4m3fn)
    if "_grouped_mm" not in missing:
        layers["bf16"] = ComposedMoe(e, h, inter, torch.bfloat16)

    header = f"{'tokens':>7} {'mode':>6}" + "".join(f" {name + ' us':>10}" for name in layers)
    header += "".join(f" {name + '/w4a8':>10}" for name in layers if name != "w4a8")
    print(header)
    for tokens in args.tokens:
        hidden = torch.randn(tokens, h, device="cuda").to(torch.bfloat16)
        logits = torch.randn(tokens, e, device="cuda")
        topk_weights, topk_ids = torch.topk(torch.softmax(logits, -1), k, dim=-1)
        topk_weights = topk_weights / topk_weights.sum(-1, keepdim=True)
        topk_ids = topk_ids.to(torch.int32)

        calls = {"w4a8": lambda: w4a8moe.fused_moe(hidden, topk_ids=topk_ids, topk_weights=topk_weights,
                                                     weights=layers["w4a8"], top_k=k)}
        for name in ("w8a8", "bf16"):
            if name in layers:
                calls[name] = lambda layer=layers[name]: layer(hidden, topk_ids, topk_weights)
        for mode in ("eager", "graph"):
            times = {}
            for name, call in calls.items():
                try:
                    replay = call if mode == "eager" else capture(call)[0].replay
                    times[name] = median_event_ms(replay, args.iters, args.warmup)
                except RuntimeError as error:  # e.g. a baseline op that rejects this shape
                    print(f"  {name} {mode} at {tokens} tokens failed: {str(error).splitlines()[0]}")
                    times[name] = float("nan")
            row = f"{tokens:>7} {mode:>6}" + "".join(f" {times[name] * 1e3:>10.1f}" for name in layers)
            row += "".join(f" {times[name] / times['w4a8']:>10.2f}" for name in layers if name != "w4a8")
            print(row, flush=True)


if __name__ == "__main__":
    main()
