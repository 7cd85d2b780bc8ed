"""fused_moe against the PyTorch reference of the layer, moe_routing bit for bit, CUDA graph capture and replay,
torch.compile, the ops' registrations (torch.library.opcheck) and bad inputs.

Tolerance of the layer (see tests/gpu/moe_gpu_test.cu): kernel and reference quantise the same values the same
way and differ only in the GEMMs' summation order, which moves some GEMM1 outputs by one bf16 step; SiLU(gate) * up
then lands a few percent of GEMM2's e4m3 inputs on the other side of a rounding boundary. That requantisation noise
compounds to 1.5-3.5 % per token (relative L2); we allow 6 %, and 15 % of the token's largest output for any
element. A wrong expert, scale, row or weight moves a token by tens of percent.
"""

import pytest
import torch

import w4a8moe
import w4a8_reference as ref

pytestmark = ref.requires_hopper


class Layer:
    """A layer's local experts: quantized values for the reference, packed weights for the kernels."""

    def __init__(self, num_experts, top_k, hidden, inter, seed, num_local_experts=None, layout="lookup"):
        generator = torch.Generator(device="cuda").manual_seed(seed)
        local = num_local_experts or num_experts
        self.num_experts, self.top_k, self.hidden, self.inter = num_experts, top_k, hidden, inter
        self.gemm1 = ref.QuantizedExperts(local, 2 * inter, hidden, generator)
        self.gemm2 = ref.QuantizedExperts(local, hidden, inter, generator)
        self.layout = layout
        self.weights = w4a8moe.prepack_moe_weights(ref.pack_offset_binary(self.gemm1.q), self.gemm1.bf16_scales,
                                                   ref.pack_offset_binary(self.gemm2.q), self.gemm2.bf16_scales,
                                                   layout=layout)
        self.generator = generator

    def hidden_states(self, tokens, dtype=torch.bfloat16):
        x = torch.randn(tokens, self.hidden, device="cuda", generator=self.generator)
        x[:, ::61] *= 6  # a few outlier channels, as in real hidden states
        return x.to(dtype)

    def router_logits(self, tokens, dtype=torch.float32):
        return torch.randn(tokens, self.num_experts, device="cuda", generator=self.generator).to(dtype)

    def skewed_topk(self, tokens):
        """Precomputed routing with four hot experts; weights normalised."""
        popularity = torch.ones(tokens, self.num_experts, device="cuda")
        popularity[:, :4] = 20
        ids = torch.multinomial(popularity, self.top_k, replacement=False, generator=self.generator)
        weights = torch.rand(tokens, self.top_k, device="cuda", generator=self.generator) * 0.95 + 0.05
        return ids.to(torch.int32), weights / weights.sum(-1, keepdim=True)

    def reference(self, hidden, topk_ids, topk_weights, expert_map=None, apply_router_weight_on_input=False):
        return ref.moe_layer(hidden, topk_ids, topk_weights, self.gemm1, self.gemm2, self.num_experts, expert_map,
                             apply_router_weight_on_input, self.layout)


_layers = {}


def layer(name):
    """Layers are built once per test session (the large ones take seconds to draw and pack)."""
    shapes = {
        "qwen3_30b_a3b": dict(num_experts=128, top_k=8, hidden=2048, inter=768),
        "mixtral_8x7b": dict(num_experts=8, top_k=2, hidden=4096, inter=14336),
        "small": dict(num_experts=16, top_k=4, hidden=256, inter=384),
        "small_ep": dict(num_experts=16, top_k=4, hidden=256, inter=384, num_local_experts=8),
        "qwen3_30b_a3b_exact": dict(num_experts=128, top_k=8, hidden=2048, inter=768, layout="exact"),
        "small_ep_exact": dict(num_experts=16, top_k=4, hidden=256, inter=384, num_local_experts=8, layout="exact"),
    }
    if name not in _layers:
        _layers[name] = Layer(**shapes[name], seed=len(_layers) + 10)
    return _layers[name]


# --- The layer against the reference -----------------------------------------------------------------------------

@pytest.mark.parametrize("model, tokens", [
    ("qwen3_30b_a3b", 1), ("qwen3_30b_a3b", 7), ("qwen3_30b_a3b", 64), ("qwen3_30b_a3b", 300),
    ("mixtral_8x7b", 7), ("mixtral_8x7b", 64),
])
def test_router_logits_match_reference(model, tokens):
    m = layer(model)
    hidden, logits = m.hidden_states(tokens), m.router_logits(tokens)
    out = w4a8moe.fused_moe(hidden, logits, weights=m.weights, top_k=m.top_k, renormalize=True)
    assert out.shape == hidden.shape and out.dtype == hidden.dtype
    ids, weights = ref.topk_softmax(logits, m.top_k, renormalize=True)
    ref.assert_tokens_close(out, m.reference(hidden, ids, weights))


@pytest.mark.parametrize("path", ["one_launch", "staged", "auto"])
def test_one_launch_and_staged_paths_match_reference(path):
    m = layer("qwen3_30b_a3b")
    hidden, logits = m.hidden_states(5), m.router_logits(5)
    out = w4a8moe.fused_moe(hidden, logits, weights=m.weights, top_k=m.top_k, path=path)
    ids, weights = ref.topk_softmax(logits, m.top_k, renormalize=True)
    ref.assert_tokens_close(out, m.reference(hidden, ids, weights))


@pytest.mark.parametrize("tokens", [1, 64, 1000])
def test_precomputed_skewed_routing_matches_reference(tokens):
    m = layer("qwen3_30b_a3b")
    hidden = m.hidden_states(tokens)
    ids, weights = m.skewed_topk(tokens)
    out = w4a8moe.fused_moe(hidden, topk_ids=ids, topk_weights=weights, weights=m.weights, top_k=m.top_k)
    ref.assert_tokens_close(out, m.reference(hidden, ids, weights))


@pytest.mark.parametrize("logits_dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("renormalize", [True, False])
def test_routing_options(logits_dtype, renormalize):
    m = layer("small")
    hidden, logits = m.hidden_states(50), m.router_logits(50, logits_dtype)
    out = w4a8moe.fused_moe(hidden, logits, weights=m.weights, top_k=m.top_k, renormalize=renormalize)
    ids, weights = ref.topk_softmax(logits, m.top_k, renormalize)
    ref.assert_tokens_close(out, m.reference(hidden, ids, weights))
    if logits_dtype == torch.float16:  # fused_moe routes float16 logits as their float32 values, exactly
        float_out = w4a8moe.fused_moe(hidden, logits.float(), weights=m.weights, top_k=m.top_k,
                                      renormalize=renormalize)
        assert torch.equal(out, float_out)


def test_fp16_activations():
    m = layer("small")
    hidden, logits = m.hidden_states(50, torch.float16), m.router_logits(50)
    out = w4a8moe.fused_moe(hidden, logits, weights=m.weights, top_k=m.top_k)
    assert out.dtype == torch.float16
    ids, weights = ref.topk_softmax(logits, m.top_k, renormalize=True)
    ref.assert_tokens_close(out, m.reference(hidden, ids, weights))


def test_router_weight_on_input():
    m = layer("small")
    hidden = m.hidden_states(50)
    ids, weights = m.skewed_topk(50)
    out = w4a8moe.fused_moe(hidden, topk_ids=ids, topk_weights=weights, weights=m.weights, top_k=m.top_k,
                            apply_router_weight_on_input=True)
    ref.assert_tokens_close(out, m.reference(hidden, ids, weights, apply_router_weight_on_input=True))


def test_expert_parallel_rank_holds_half_the_experts():
    m = layer("small_ep")  # this rank holds global experts 8..15 as local 0..7
    expert_map = torch.full((16,), -1, dtype=torch.int32, device="cuda")
    expert_map[8:] = torch.arange(8, dtype=torch.int32, device="cuda")
    hidden, logits = m.hidden_states(77), m.router_logits(77)
    logits[:5, 8:] = -30  # these tokens route to other ranks only: exact zeros here
    out = w4a8moe.fused_moe(hidden, logits, weights=m.weights, top_k=m.top_k, expert_map=expert_map)
    ids, weights = ref.topk_softmax(logits, m.top_k, renormalize=True)
    assert (out[:5] == 0).all()
    ref.assert_tokens_close(out, m.reference(hidden, ids, weights, expert_map=expert_map))


# The exact-scale layout: both paths, every GEMM chunk size (1 to 300 tokens), an expert-parallel rank, fp16.
@pytest.mark.parametrize("tokens, path", [(1, "auto"), (5, "one_launch"), (5, "staged"), (64, "auto"),
                                          (300, "auto")])
def test_exact_layout_matches_reference(tokens, path):
    m = layer("qwen3_30b_a3b_exact")
    hidden, logits = m.hidden_states(tokens), m.router_logits(tokens)
    out = w4a8moe.fused_moe(hidden, logits, weights=m.weights, top_k=m.top_k, path=path)
    ids, weights = ref.topk_softmax(logits, m.top_k, renormalize=True)
    ref.assert_tokens_close(out, m.reference(hidden, ids, weights))


def test_exact_layout_expert_parallel_rank_fp16():
    m = layer("small_ep_exact")
    expert_map = torch.full((16,), -1, dtype=torch.int32, device="cuda")
    expert_map[:8] = torch.arange(8, dtype=torch.int32, device="cuda")
    for tokens in (3, 77):
        hidden, logits = m.hidden_states(tokens, torch.float16), m.router_logits(tokens)
        out = w4a8moe.fused_moe(hidden, logits, weights=m.weights, top_k=m.top_k, expert_map=expert_map)
        ids, weights = ref.topk_softmax(logits, m.top_k, renormalize=True)
        ref.assert_tokens_close(out, m.reference(hidden, ids, weights, expert_map=expert_map))


def test_layers_packed_in_different_layouts_are_rejected():
    # GEMM1's size tells the layout ("lookup"); the library finds GEMM2's buffer too small for it.
    lookup, exact = layer("small_ep"), layer("small_ep_exact")
    hidden, logits = lookup.hidden_states(4), lookup.router_logits(4)
    with pytest.raises(ValueError, match='gemm2_weights_bytes=.* packed in the "lookup" layout take'):
        torch.ops.w4a8moe.moe_forward(hidden, lookup.weights.gemm1, exact.weights.gemm2, logits, None, None, None,
                                      16, 8, 4, 384, True, False)


def test_zero_tokens():
    m = layer("small")
    out = w4a8moe.fused_moe(m.hidden_states(0), m.router_logits(0), weights=m.weights, top_k=m.top_k)
    assert out.shape == (0, m.hidden)


# --- Routing data ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_local_experts", [64, 20])
def test_moe_routing_matches_reference_exactly(num_local_experts):
    generator = torch.Generator(device="cuda").manual_seed(7)
    ids = torch.randint(0, 64, (3001, 8), dtype=torch.int32, device="cuda", generator=generator)
    ids[0, 5], ids[2, 1] = -1, 99  # out-of-range ids are dropped
    expert_map = None
    if num_local_experts < 64:  # scattered: local expert i is global expert 3i
        expert_map = torch.full((64,), -1, dtype=torch.int32, device="cuda")
        expert_map[0:3 * num_local_experts:3] = torch.arange(num_local_experts, dtype=torch.int32, device="cuda")
    routing = w4a8moe.moe_routing(ids, 64, expert_map, num_local_experts)
    offsets, dest_row, row_slot = ref.routing_data(ids, 64, num_local_experts, expert_map)
    assert torch.equal(routing.expert_offsets, offsets)
    assert torch.equal(routing.dest_row, dest_row)
    assert torch.equal(routing.row_slot, row_slot)


# --- CUDA graphs and torch.compile -------------------------------------------------------------------------------

def test_cuda_graph_replays_with_new_inputs():
    m = layer("small")
    static_hidden, static_logits = m.hidden_states(64), m.router_logits(64)

    def forward():
        return w4a8moe.fused_moe(static_hidden, static_logits, weights=m.weights, top_k=m.top_k)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        forward()  # warm-up outside the capture, as torch.cuda.graph requires
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = forward()
    for _ in range(3):
        hidden, logits = m.hidden_states(64), m.router_logits(64)
        static_hidden.copy_(hidden)
        static_logits.copy_(logits)
        graph.replay()
        eager = w4a8moe.fused_moe(hidden, logits, weights=m.weights, top_k=m.top_k)
        assert torch.equal(static_out, eager)


class MoeBlock(torch.nn.Module):
    """What an engine's MoE block does around the layer: the experts and the residual (the router's logits come
    in, so eager and compiled runs route identically)."""

    def __init__(self, m: Layer):
        super().__init__()
        self.experts = m.weights
        self.top_k = m.top_k

    def forward(self, hidden, router_logits):
        return hidden + w4a8moe.fused_moe(hidden, router_logits, weights=self.experts, top_k=self.top_k)


@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_compile_fullgraph(dynamic):
    torch._dynamo.reset()
    m = layer("small")
    block = MoeBlock(m)
    compiled = torch.compile(block, fullgraph=True, dynamic=dynamic)
    for tokens in (5, 33):
        hidden, logits = m.hidden_states(tokens), m.router_logits(tokens)
        torch.testing.assert_close(compiled(hidden, logits), block(hidden, logits), rtol=0, atol=0)


def test_opcheck_run_time_ops():
    m = layer("small")
    hidden, logits = m.hidden_states(24), m.router_logits(24)
    ids, weights = m.skewed_topk(24)
    torch.library.opcheck(torch.ops.w4a8moe.moe_forward.default,
                          (hidden, m.weights.gemm1, m.weights.gemm2, logits, None, None, None, m.num_experts,
                           m.num_experts, m.top_k, m.inter, True, False))
    torch.library.opcheck(torch.ops.w4a8moe.moe_forward.default,
                          (hidden, m.weights.gemm1, m.weights.gemm2, None, ids, weights, None, m.num_experts,
                           m.num_experts, m.top_k, m.inter, False, True))
    torch.library.opcheck(torch.ops.w4a8moe.moe_routing.default, (ids, None, m.num_experts, m.num_experts))
    act, scales = ref.random_activations(30, m.hidden, m.generator)
    offsets = torch.tensor([0, 10, 10, 30] + [30] * 13, dtype=torch.int64, device="cuda")
    act_bytes = act.view(torch.uint8).clone()
    # test_schema compares the inputs before and after with arithmetic that has no float8 kernel, so the check
    # that act is not mutated is done here instead.
    torch.library.opcheck(torch.ops.w4a8moe.grouped_gemm.default,
                          (act, scales, offsets, m.weights.gemm1, 2 * m.inter, torch.bfloat16, None),
                          test_utils=("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic"))
    assert torch.equal(act.view(torch.uint8), act_bytes)


# --- Bad inputs ----------------------------------------------------------------------------------------------------

BAD_INPUTS = [
    ("float32 hidden", TypeError, "hidden must be BFloat16 or Half, got Float"),
    ("cpu hidden", ValueError, "hidden must be a CUDA tensor"),
    ("cpu router_logits", ValueError, "router_logits is on cpu"),
    ("router_logits of the wrong shape", ValueError, r"router_logits must have shape \[50, 16\]"),
    ("non-contiguous hidden", ValueError, "hidden must be contiguous"),
    ("unaligned hidden", ValueError, "hidden's data pointer must be 16-byte aligned"),
    ("both routings", ValueError, "not both"),
    ("no routing", ValueError, "not neither"),
    ("int64 topk_ids", TypeError, "topk_ids must be Int"),
    ("topk_ids of the wrong width", ValueError, r"topk_ids must have shape \[50, 4\]"),
    ("topk_ids alone", ValueError, "topk_ids and topk_weights go together"),
    ("int64 expert_map", TypeError, "expert_map must be Int"),
    ("hidden size not a multiple of 16", ValueError, "shape.hidden=200: must be a positive multiple of 16"),
    ("unknown kernel config", NotImplementedError, "no such config"),
    ("unknown path", ValueError, "path='fused': must be \"auto\", \"staged\" or \"one_launch\""),
    ("one launch for too many tokens", ValueError, "args.path=kOneLaunch: the one-launch layer takes 1..8 tokens"),
]


@pytest.mark.parametrize("case, error, message", BAD_INPUTS, ids=[case for case, _, _ in BAD_INPUTS])
def test_bad_inputs_raise_clear_errors(case, error, message):
    m = layer("small")
    hidden, logits = m.hidden_states(50), m.router_logits(50)
    ids, weights = m.skewed_topk(50)
    args = dict(router_logits=logits, topk_ids=None, topk_weights=None)
    kwargs = dict(weights=m.weights, top_k=m.top_k)
    if case == "float32 hidden":
        hidden = hidden.float()
    elif case == "cpu hidden":
        hidden = hidden.cpu()
    elif case == "cpu router_logits":
        args["router_logits"] = logits.cpu()
    elif case == "router_logits of the wrong shape":
        args["router_logits"] = logits[:-1]
    elif case == "non-contiguous hidden":
        hidden = hidden.t().contiguous().t()
    elif case == "unaligned hidden":
        buffer = torch.empty(hidden.numel() + 1, dtype=hidden.dtype, device="cuda")
        hidden = buffer[1:].view(hidden.shape)
    elif case == "both routings":
        args.update(topk_ids=ids, topk_weights=weights)
    elif case == "no routing":
        args["router_logits"] = None
    elif case == "int64 topk_ids":
        args.update(router_logits=None, topk_ids=ids.long(), topk_weights=weights)
    elif case == "topk_ids of the wrong width":
        args.update(router_logits=None, topk_ids=ids[:, :2].contiguous(), topk_weights=weights)
    elif case == "topk_ids alone":
        args.update(router_logits=None, topk_ids=ids)
    elif case == "int64 expert_map":
        kwargs["expert_map"] = torch.arange(16, device="cuda")
    elif case == "hidden size not a multiple of 16":
        hidden = torch.zeros(50, 200, dtype=torch.bfloat16, device="cuda")
    elif case == "unknown kernel config":
        kwargs["gemm1_config"] = "no_such_kernel"
    elif case == "unknown path":
        kwargs["path"] = "fused"
    elif case == "one launch for too many tokens":  # the layer's 50 tokens
        kwargs["path"] = "one_launch"
    with pytest.raises(error, match=message):
        w4a8moe.fused_moe(hidden, **args, **kwargs)


def test_weights_packed_for_another_shape_are_rejected():
    m = layer("small")
    hidden, logits = m.hidden_states(8), m.router_logits(8)
    # No layout named: the op tells it by GEMM1's size, which fits no layout of this shape.
    with pytest.raises(ValueError, match="gemm1_weights has .* bytes, .* packed for another shape"):
        torch.ops.w4a8moe.moe_forward(hidden, m.weights.gemm1, m.weights.gemm2, logits, None, None, None,
                                      m.num_experts, m.num_experts, m.top_k, 2 * m.inter, True, False)
    # The layout named: the library checks the buffers' sizes (gemm1/gemm2_weights_bytes).
    wrong = w4a8moe.PackedMoeWeights(m.weights.gemm1, m.weights.gemm2, m.num_experts, m.hidden, 2 * m.inter)
    with pytest.raises(ValueError, match=r"args\.gemm1_weights_bytes=.* take .* bytes \(swapped, or packed for"):
        w4a8moe.fused_moe(hidden, logits, weights=wrong, top_k=m.top_k)


@pytest.mark.parametrize("layout", ["lookup", "exact"])
def test_swapped_gemm_weights_are_rejected(layout):
    m = layer("small_ep" if layout == "lookup" else "small_ep_exact")
    hidden, logits = m.hidden_states(8), m.router_logits(8)
    expert_map = torch.full((16,), -1, dtype=torch.int32, device="cuda")
    expert_map[:8] = torch.arange(8, dtype=torch.int32, device="cuda")
    w = m.weights
    assert w.gemm1.numel() != w.gemm2.numel()  # else no size could tell them apart
    swapped = w4a8moe.PackedMoeWeights(w.gemm2, w.gemm1, w.num_experts, w.hidden_size, w.intermediate_size,
                                       layout=w.layout)
    with pytest.raises(ValueError, match=r"args\.gemm1_weights_bytes=%d: .* take %d bytes"
                       % (w.gemm2.numel(), w.gemm1.numel())):
        w4a8moe.fused_moe(hidden, logits, weights=swapped, top_k=m.top_k, expert_map=expert_map)
    only_gemm2 = w4a8moe.PackedMoeWeights(w.gemm1, w.gemm1, w.num_experts, w.hidden_size, w.intermediate_size,
                                          layout=w.layout)
    with pytest.raises(ValueError, match=r"args\.gemm2_weights_bytes=%d: .* take %d bytes"
                       % (w.gemm1.numel(), w.gemm2.numel())):
        w4a8moe.fused_moe(hidden, logits, weights=only_gemm2, top_k=m.top_k, expert_map=expert_map)
    out = w4a8moe.fused_moe(hidden, logits, weights=w, top_k=m.top_k, expert_map=expert_map)
    assert out.shape == hidden.shape


def test_moe_routing_bad_inputs():
    ids = torch.zeros(4, 2, dtype=torch.int32, device="cuda")
    with pytest.raises(TypeError, match="topk_ids must be Int"):
        w4a8moe.moe_routing(ids.long(), 8)
    with pytest.raises(ValueError, match="expert_map is null: required when"):
        w4a8moe.moe_routing(ids, 8, num_local_experts=4)
    with pytest.raises(ValueError, match=r"expert_map must have shape \[8\]"):
        w4a8moe.moe_routing(ids, 8, torch.zeros(4, dtype=torch.int32, device="cuda"), 4)
