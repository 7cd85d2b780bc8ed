#include "gpu_runs.h"

#include <cuda_runtime.h>

#include <stdexcept>

#include "common/device_buffer.h"
#include "common/float_formats.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/moe.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::accuracy {
namespace {

void check_cuda(cudaError_t error, char const* what) {
  if (error != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(error));
}

void check_status(Status const& status, char const* what) {
  if (!status.ok()) throw std::runtime_error(std::string(what) + ": " + status.to_string());
}

DeviceBuffer checked_buffer(size_t bytes, char const* what) {
  DeviceBuffer buffer(bytes);
  if (!buffer.ok()) throw std::runtime_error(std::string("cudaMalloc for ") + what + " failed");
  return buffer;
}

template <class T>
DeviceBuffer upload(std::vector<T> const& host, char const* what) {
  DeviceBuffer buffer = checked_buffer(host.size() * sizeof(T), what);
  check_cuda(cudaMemcpy(buffer.get(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), what);
  return buffer;
}

// The checkpoint layout (offset-binary int32 words, bf16 scales) through prepack_weights().
DeviceBuffer prepack(reference::QuantizedExperts const& experts, std::vector<uint16_t> const& bf16_scales) {
  DeviceBuffer const weights = upload(reference::pack_offset_binary(experts), "packed int4 weights");
  DeviceBuffer const scales = upload(bf16_scales, "bf16 group scales");
  DeviceBuffer packed = checked_buffer(packed_weights_bytes(experts.shape), "prepacked weights");
  PrepackArgs args;
  args.shape = experts.shape;
  args.weights = weights.get();
  args.group_scales = scales.get();
  args.packed = packed.get();
  args.packed_bytes = packed.bytes();
  check_status(prepack_weights(args), "prepack_weights");
  return packed;
}

std::vector<float> download_bf16(DeviceBuffer const& buffer, size_t count) {
  std::vector<uint16_t> bits(count);
  check_cuda(cudaMemcpy(bits.data(), buffer.get(), count * sizeof(uint16_t), cudaMemcpyDeviceToHost), "output copy");
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = bf16_to_float(bits[i]);
  return values;
}

}  // namespace

std::string hopper_device_name() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) throw std::runtime_error("no CUDA device");
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  if (prop.major != 9 || prop.minor != 0) throw std::runtime_error(std::string(prop.name) + " is not a Hopper GPU (sm_90)");
  return prop.name;
}

std::vector<KernelOutput> run_grouped_gemm_every_config(GemmProblem const& p) {
  auto const& shape = p.experts.shape;
  DeviceBuffer const packed = prepack(p.experts, p.bf16_scales);
  DeviceBuffer const act = upload(p.act, "activations");
  DeviceBuffer const token_scales = upload(p.token_scales, "token scales");
  DeviceBuffer const offsets = upload(p.offsets, "expert offsets");
  size_t const out_count = size_t(p.rows()) * shape.n;
  DeviceBuffer const out = checked_buffer(out_count * sizeof(uint16_t), "output");
  DeviceBuffer const workspace = checked_buffer(grouped_gemm_workspace_bytes(shape.num_experts), "workspace");

  GroupedGemmArgs args;
  args.shape = shape;
  args.packed_weights = packed.get();
  args.total_rows = p.rows();
  args.act = act.get();
  args.token_scales = token_scales.as<float>();
  args.expert_offsets = offsets.as<int64_t>();
  args.host_expert_offsets = p.offsets.data();
  args.out = out.get();
  args.out_type = OutputType::kBF16;
  args.workspace = workspace.get();
  args.workspace_bytes = workspace.bytes();

  std::vector<std::string> configs = {select_gemm_config(args)};
  for (auto const& name : gemm_config_names()) {
    if (name != configs.front()) configs.push_back(name);
  }
  std::vector<KernelOutput> outputs;
  for (auto const& config : configs) {
    args.config = config;
    check_cuda(cudaMemset(out.get(), 0xFF, out.bytes()), "output poison");  // NaN: an unwritten output shows
    check_status(grouped_gemm(args), "grouped_gemm");
    check_cuda(cudaDeviceSynchronize(), "grouped_gemm run");
    outputs.push_back({config, download_bf16(out, out_count)});
  }
  return outputs;
}

std::vector<float> run_moe_forward(LayerProblem const& p) {
  MoeShape shape;
  shape.num_experts = shape.num_local_experts = p.model.experts;
  shape.top_k = p.model.top_k;
  shape.hidden = p.model.hidden;
  shape.inter = p.model.inter;
  DeviceBuffer const gemm1 = prepack(p.int4.gemm1, p.gemm1_scales);
  DeviceBuffer const gemm2 = prepack(p.int4.gemm2, p.gemm2_scales);
  std::vector<uint16_t> hidden_bits(p.hidden.size());
  for (size_t i = 0; i < hidden_bits.size(); ++i) hidden_bits[i] = float_to_bf16(p.hidden[i]);
  DeviceBuffer const hidden = upload(hidden_bits, "hidden states");
  DeviceBuffer const topk_ids = upload(p.topk.ids, "top-k ids");
  DeviceBuffer const topk_weights = upload(p.topk.weights, "top-k weights");
  size_t const out_count = size_t(p.tokens) * p.model.hidden;
  DeviceBuffer const out = checked_buffer(out_count * sizeof(uint16_t), "layer output");
  DeviceBuffer const workspace = checked_buffer(moe_workspace_bytes(shape, p.tokens), "layer workspace");

  MoeForwardArgs args;
  args.shape = shape;
  args.gemm1_weights = gemm1.get();
  args.gemm2_weights = gemm2.get();
  args.num_tokens = p.tokens;
  args.hidden = hidden.get();
  args.act_type = ActivationType::kBF16;
  args.topk_ids = topk_ids.as<int32_t>();
  args.topk_weights = topk_weights.as<float>();
  args.out = out.get();
  args.workspace = workspace.get();
  args.workspace_bytes = workspace.bytes();
  check_status(moe_forward(args), "moe_forward");
  check_cuda(cudaDeviceSynchronize(), "moe_forward run");
  return download_bf16(out, out_count);
}

}  // namespace w4a8moe::accuracy
