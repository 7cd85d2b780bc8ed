#!/usr/bin/env python3
"""Writes a small unquantized Qwen3-MoE-style checkpoint (bf16 safetensors + config.json) for end-to-end checks of
`w4a8moe quantize` and `w4a8moe run --checkpoint`. Standard library and numpy only.

    python3 scripts/make_toy_checkpoint.py OUT_DIR [--layers 2 --experts 16 --topk 4 --hidden 512 --inter 256]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--topk", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--inter", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)

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
