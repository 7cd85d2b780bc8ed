"""peers_bench's models and inputs: the device, each model's shape and weight format (and the expert-parallel rank
this process plays), and one case: random hidden states and router logits routed by softmax top-k, the routing every
level shares."""

import zlib
from dataclasses import dataclass
from typing import Optional

try:
    import torch
except ImportError:  # reported by peers_bench.main(), which exits 0 as for a machine without a GPU
    torch = None

DEVICE = "cuda"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    experts: int  # experts the router scores (global)
    top_k: int
    hidden: int
    inter: int
    weight_format: str = "int4"  # "int4": compressed-tensors group 128; "mxfp4": gpt-oss's e2m1 + e8m0 and biases
    ep_ranks: int = 1
    ep_rank: int = 0  # which rank's experts this process holds

    @property
    def local_experts(self) -> int:
        return self.experts // self.ep_ranks

    @property
    def first_local(self) -> int:
        return self.ep_rank * self.local_experts

    def expert_map(self) -> Optional["torch.Tensor"]:
        """int32 [experts]: local id of each global expert, -1 for other ranks' experts; None without EP."""
        if self.ep_ranks == 1:
            return None
        expert_map = torch.full((self.experts,), -1, dtype=torch.int32, device=DEVICE)
        expert_map[self.first_local:self.first_local + self.local_experts] = torch.arange(
            self.local_experts, dtype=torch.int32, device=DEVICE)
        return expert_map


MODELS = {
    "qwen3-30b-a3b": ModelSpec("qwen3-30b-a3b", experts=128, top_k=8, hidden=2048, inter=768),
    "mixtral-8x7b": ModelSpec("mixtral-8x7b", experts=8, top_k=2, hidden=4096, inter=14336),
    # NOTE: a rank other than 0 so that the map is not the identity on the first ids: a method that ignored it
    # would compute the wrong experts and show it in rel_err.
    "deepseek-v3-ep8": ModelSpec("deepseek-v3-ep8", experts=256, top_k=8, hidden=7168, inter=2048, ep_ranks=8,
                                 ep_rank=3),
    # gpt-oss's MXFP4 experts with biases and its clamped SwiGLU (bench/peers_gpt_oss.py).
    "gpt-oss-120b": ModelSpec("gpt-oss-120b", experts=128, top_k=4, hidden=2880, inter=2880, weight_format="mxfp4"),
}
# What a run without --models measures: every model (gpt-oss-120b alone took 23 s of an H200 run, 7 token counts).
DEFAULT_MODELS = ("qwen3-30b-a3b", "mixtral-8x7b", "deepseek-v3-ep8", "gpt-oss-120b")


# --- One case: inputs and the shared routing ----------------------------------------------------------------------

@dataclass
class Case:
    tokens: int
    hidden: "torch.Tensor"  # bf16 [T, H]
    logits: "torch.Tensor"  # fp32 [T, global experts]
    expert_map: Optional["torch.Tensor"]  # int32 [global experts] or None
    topk_ids: "torch.Tensor"  # int32 [T, top_k], global ids (PyTorch's softmax top-k)
    topk_weights: "torch.Tensor"  # fp32 [T, top_k], renormalised
    local_ids: "torch.Tensor"  # int64 [T, top_k]: local expert of each slot, -1 for other ranks' experts
    row_slot: "torch.Tensor"  # int64 [R]: slot t * top_k + j of each row; rows grouped by local expert, slot order
    row_expert: "torch.Tensor"  # int64 [R]: local expert of each row
    offsets: "torch.Tensor"  # int64 [E_local + 1]: each expert's first row
    x1: "torch.Tensor"  # bf16 [R, H]: GEMM1's input rows (the hidden state of each row's token)
    x2: "torch.Tensor"  # bf16 [R, I]: GEMM2's input rows (random)
    active_experts: int  # local experts with at least one row

    @property
    def rows(self) -> int:
        return self.row_slot.shape[0]

    def row_token(self, top_k):
        return self.row_slot // top_k


def make_case(spec, tokens, expert_map):
    """Random hidden states and router logits (seeded by model and size), routed by softmax top-k in PyTorch: the
    routing the GEMM levels and the reference use (each method's layer routes with its own op)."""
    generator = torch.Generator(device=DEVICE).manual_seed(zlib.crc32(f"{spec.name}/{tokens}".encode()))
    hidden = torch.randn(tokens, spec.hidden, device=DEVICE, generator=generator).to(torch.bfloat16)
    logits = torch.randn(tokens, spec.experts, device=DEVICE, generator=generator)
    weights, ids = torch.softmax(logits, dim=-1).topk(spec.top_k, dim=-1)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    local_ids = expert_map[ids].long() if expert_map is not None else ids
    slots = local_ids.flatten()
    valid = slots >= 0
    order = torch.argsort(torch.where(valid, slots, spec.local_experts), stable=True)
    row_slot = order[:int(valid.sum())]
    counts = torch.bincount(slots[valid], minlength=spec.local_experts)
    offsets = torch.zeros(spec.local_experts + 1, dtype=torch.int64, device=DEVICE)
    offsets[1:] = counts.cumsum(0)
    return Case(tokens=tokens, hidden=hidden, logits=logits, expert_map=expert_map,
                topk_ids=ids.to(torch.int32), topk_weights=weights, local_ids=local_ids, row_slot=row_slot,
                row_expert=slots[row_slot], offsets=offsets, x1=hidden[row_slot // spec.top_k],
                x2=torch.randn(row_slot.shape[0], spec.inter, device=DEVICE, generator=generator).to(torch.bfloat16),
                active_experts=int((counts > 0).sum()))


def gather_rows(x, index):
    """x[index] along dim 0; 1-byte types (fp8) gathered as bytes, which every PyTorch build can index."""
    if x.element_size() == 1 and x.dtype != torch.uint8:
        return x.view(torch.uint8)[index].view(x.dtype)
    return x[index]


def spread(count, limit):
    """Up to `limit` indices spread evenly over range(count)."""
    return torch.linspace(0, count - 1, steps=min(count, limit), device=DEVICE).round().long().unique()
