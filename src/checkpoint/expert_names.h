// Where routed expert weights live in a checkpoint: the one table of naming conventions, used both to find a
// layer's experts (gather) and to recognise expert weights among all tensors (quantizer).
//
// A module name is the template with {L} = layer, {e} = expert, {p} = the projection's name; tensors are
// "<module>.weight" (unquantized) or "<module>.weight_packed / .weight_scale / .weight_shape" (W4A8).
#pragma once

#include <string>
#include <string_view>

#include "w4a8moe/checkpoint.h"

namespace w4a8moe::checkpoint {

struct ExpertNaming {
  char const* models;           // for messages
  char const* module_template;  // with {L}, {e}, {p}
  char const* projection_names[3];  // indexed by ExpertProjection: gate, up, down
};

inline constexpr ExpertNaming kExpertNamings[] = {
    {"Qwen-MoE, DeepSeek", "model.layers.{L}.mlp.experts.{e}.{p}", {"gate_proj", "up_proj", "down_proj"}},
    {"Mixtral", "model.layers.{L}.block_sparse_moe.experts.{e}.{p}", {"w1", "w3", "w2"}},
};

inline constexpr ExpertProjection kProjections[] = {ExpertProjection::kGate, ExpertProjection::kUp,
                                                    ExpertProjection::kDown};

char const* projection_label(ExpertProjection projection);  // "gate", "up", "down"

std::string expert_module_name(ExpertNaming const& naming, int layer, int expert, ExpertProjection projection);

// A module name taken apart.
struct ExpertModule {
  ExpertNaming const* naming = nullptr;
  int layer = 0;
  int expert = 0;
  ExpertProjection projection = ExpertProjection::kGate;
};

// True if module_name is an expert module of some naming; indices are decimal without leading zeros and fit int.
bool parse_expert_module(std::string_view module_name, ExpertModule* module);

}  // namespace w4a8moe::checkpoint
