#!/usr/bin/env python3
"""Writes a small unquantized Qwen3-MoE-style checkpoint (bf16 safetensors + config.json) for end-to-end checks of
`w4a8moe quantize` and `w4a8moe run --checkpoint`; with --gpt-oss, a small gpt-oss checkpoint in its published MXFP4
layout (experts as *_blocks / *_scales / *_bias, config.json with quant_method mxfp4) for `w4a8moe run
--checkpoint` directly. Standard library and numpy only.

    python3 scripts/make_toy_checkpoint.py OUT_DIR [--layers 2 --experts 16 --topk 4 --hidden 512 --inter 256]
                                                   [--gpt-oss]
"""
import argparse
import json
import os
import struct

import numpy as np


def to_bf16_bytes(values):
    bits = np.asarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
    return rounded.astype(np.uint16).tobytes()


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, data) in sorted(tensors.items()):
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


E2M1_MAGNITUDES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], dtype=np.float32)


def mxfp4(w):
    """[rows, cols] float32 -> blocks uint8 [rows, cols/32, 16] and e8m0 scales uint8 [rows, cols/32] (OCP MX: scale
    2^(floor(log2 amax) - 2) per 32 values, the nearest e2m1 code, the low nibble holding the even column)."""
    rows, cols = w.shape
    blocks = w.reshape(rows, cols // 32, 32)
    amax = np.abs(blocks).max(axis=2)
    exponent = np.where(amax > 0, np.floor(np.log2(np.maximum(amax, 1e-30))) - 2, -127).clip(-127, 127)
    scaled = blocks / np.exp2(exponent)[..., None]
    index = np.abs(np.abs(scaled)[..., None] - E2M1_MAGNITUDES).argmin(axis=-1).astype(np.uint8)
    codes = index | np.where((scaled < 0) & (index > 0), 8, 0).astype(np.uint8)
    packed = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
    return packed, (exponent + 127).astype(np.uint8)


def write_gpt_oss(args, rng):
    """gpt-oss's layout: experts stacked per layer, GEMM1 rows interleaving gate (2i) and up (2i + 1)."""
    e, h, inter = args.experts, args.hidden, args.inter
    tensors = {}

    def bf16(shape, scale):
        return ("BF16", shape, to_bf16_bytes(rng.standard_normal(shape, dtype=np.float32) * scale))

    for layer in range(args.layers):
        prefix = f"model.layers.{layer}.mlp"
        for name, rows, cols in (("gate_up_proj", 2 * inter, h), ("down_proj", h, inter)):
            w = rng.standard_normal((e * rows, cols), dtype=np.float32) / np.sqrt(cols)
            blocks, scales = mxfp4(w)
            tensors[f"{prefix}.experts.{name}_blocks"] = ("U8", (e, rows, cols // 32, 16), blocks.tobytes())
            tensors[f"{prefix}.experts.{name}_scales"] = ("U8", (e, rows, cols // 32), scales.tobytes())
            tensors[f"{prefix}.experts.{name}_bias"] = bf16((e, rows), 0.1)
        tensors[f"{prefix}.router.weight"] = bf16((e, h), 1 / np.sqrt(h))
        tensors[f"{prefix}.router.bias"] = bf16((e,), 0.1)
    write_safetensors(os.path.join(args.out_dir, "model.safetensors"), tensors)
    config = {
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        "hidden_size": h,
        "intermediate_size": inter,
        "num_hidden_layers": args.layers,
        "num_local_experts": e,
        "experts_per_token": args.topk,
        "swiglu_limit": 7.0,
        "quantization_config": {"quant_method": "mxfp4"},
    }
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {args.out_dir}: {len(tensors)} tensors (gpt-oss, MXFP4)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--topk", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--inter", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gpt-oss", action="store_true", help="gpt-oss's MXFP4 layout (H and I multiples of 32)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.gpt_oss:
        write_gpt_oss(args, rng)
        return

    def weight(rows, cols):
        # Trained-looking weights: N(0, 1/cols) with a few output channels 4x larger.
        w = rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)
        w[rng.random(rows) < 1 / 64] *= 4.0
        return ("BF16", (rows, cols), to_bf16_bytes(w))

    tensors = {"model.embed_tokens.weight": weight(1000, args.hidden)}
    for layer in range(args.layers):
        prefix = f"model.layers.{layer}"
        tensors[f"{prefix}.self_attn.q_proj.weight"] = weight(args.hidden, args.hidden)
        tensors[f"{prefix}.mlp.gate.weight"] = weight(args.experts, args.hidden)
        for e in range(args.experts):
            tensors[f"{prefix}.mlp.experts.{e}.gate_proj.weight"] = weight(args.inter, args.hidden)
            tensors[f"{prefix}.mlp.experts.{e}.up_proj.weight"] = weight(args.inter, args.hidden)
            tensors[f"{prefix}.mlp.experts.{e}.down_proj.weight"] = weight(args.hidden, args.inter)
    write_safetensors(os.path.join(args.out_dir, "model.safetensors"), tensors)
    config = {
        "architectures": ["Qwen3MoeForCausalLM"],
        "model_type": "qwen3_moe",
        "hidden_size": args.hidden,
        "num_hidden_layers": args.layers,
        "num_experts": args.experts,
        "num_experts_per_tok": args.topk,
        "moe_intermediate_size": args.inter,
        "norm_topk_prob": True,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "torch_dtype": "bfloat16",
    }
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {args.out_dir}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
