// Device pieces shared by the two weight-streaming kernels (decode_gemm.cu, stream_gemm.cu): finding a block's chunk
// of an expert's rows from the device offsets, and the lookup-table conversion of the packed int4 weights.
//
// The packed format (prepack/packed_format.h) stores each 16-channel x 32-K reorder atom as 256 contiguous bytes:
// lane L of a warp loads bytes 8L..8L+7, whose word x holds channel L/4 (nibbles 0-3) and channel L/4 + 8 (nibbles
// 4-7) at K 4(L%4)..4(L%4)+3, and word y the same 16 K further on: exactly the A fragment of an 8-bit m16n8k32 MMA,
// and each warp's share of a wgmma m64k32 A operand.
#pragma once

#include <cub/block/block_scan.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "gemm/grouped_params.h"

namespace w4a8moe::gemm {

constexpr int kStripeChannels = 16;  // rows of a reorder atom (prepack::reorder_atom_offset)
constexpr int kAtomK = 32;
constexpr int kAtomBytes = kStripeChannels * kAtomK / 2;
constexpr int kAtomsPerGroup = kGroupSize / kAtomK;

// Bytes between consecutive K atoms of one stripe.
__device__ __forceinline__ size_t atom_stride(int n) { return size_t(n / kStripeChannels) * kAtomBytes; }

struct Chunk {
  int expert;
  int rows;
  int64_t first_row;
};

// The chunk-th chunk of kChunkRows rows, counting each expert's rows in expert order; an expert whose offsets are
// not expert_rows_valid() holds none. False when there are fewer chunks. Called by the whole block of kThreads.
template <int kThreads, int kChunkRows>
__device__ bool find_chunk(GroupedGemmParams const& p, int64_t chunk, Chunk* found) {
  using Scan = cub::BlockScan<int64_t, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ bool done;
  if (threadIdx.x == 0) done = false;
  int64_t chunks_before = 0;
  for (int base = 0; base < p.shape.num_experts; base += kThreads) {
    int const e = base + int(threadIdx.x);
    int64_t begin = 0, rows = 0;
    if (e < p.shape.num_experts) {
      begin = p.expert_offsets[e];
      int64_t const end = p.expert_offsets[e + 1];
      if (expert_rows_valid(begin, end, p.total_rows)) rows = end - begin;
    }
    int64_t const chunks = (rows + kChunkRows - 1) / kChunkRows;
    int64_t inclusive = 0, total = 0;
    Scan(scan_storage).InclusiveSum(chunks, inclusive, total);
    int64_t const first = chunks_before + inclusive - chunks;
    if (chunk >= first && chunk < first + chunks) {
      int64_t const skipped = (chunk - first) * kChunkRows;
      *found = {e, int(min(int64_t(kChunkRows), rows - skipped)), begin + skipped};
      done = true;
    }
    chunks_before += total;
    __syncthreads();  // scan_storage is reused, and `done` is read below
    if (done) return true;
  }
  return false;
}

// The chunks a call can have: at most one per expert that holds rows, plus one per kChunkRows rows beyond each
// expert's first. (The looser "one partial per expert plus the full ones" counted a ninth chunk for 8 rows over 8
// experts, and that empty chunk's blocks kept the grid from spreading: Qwen3 GEMM2 at 1 token 8.6 -> 7.3 us.)
inline int64_t max_chunks(int64_t rows, int num_experts, int64_t chunk_rows) {
  int64_t const active = rows < num_experts ? rows : num_experts;
  return active + (rows - active) / chunk_rows;
}

__device__ __forceinline__ uint2 load_streaming(void const* address) {
  uint2 v;
  asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "l"(address));
  return v;
}

// prmt without __byte_perm's masking of each selector nibble to 3 bits: our selectors never set bit 3.
__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t selector) {
  uint32_t out;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(out) : "r"(a), "r"(b), "r"(selector));
  return out;
}

// The positive half {0, 7 sg, ..., 1 sg} of the lookup table from the stored negative half {-8 sg, ..., -1 sg}: the
// sign bits flipped, entry 0 (nibble 0, the value 0) zeroed. As CUTLASS's mixed-input mainloop builds it.
__device__ __forceinline__ uint2 positive_table(uint2 negative) {
  return {(negative.x & 0xFFFFFF00u) ^ 0x80808080u, negative.y ^ 0x80808080u};
}

// Four LUT-encoded nibbles (the low 16 bits of index and select) -> four e4m3 bytes: the three low bits pick the
// table entry, the sign bit picks the negative or the positive table.
__device__ __forceinline__ uint32_t lookup4(uint32_t index, uint32_t select, uint2 negative, uint2 positive) {
  uint32_t const neg = prmt(negative.x, negative.y, index);
  uint32_t const pos = prmt(positive.x, positive.y, index);
  return prmt(pos, neg, select);
}

// Eight LUT-encoded nibbles of one word (nibbles 0-3 of channel `low`, 4-7 of channel `high`, as the reorder atom
// stores them) -> four e4m3 of each channel.
__device__ __forceinline__ void lookup8(uint32_t word, uint2 low, uint2 low_positive, uint2 high, uint2 high_positive,
                                        uint32_t& low_out, uint32_t& high_out) {
  uint32_t const index = word & 0x77777777u;
  uint32_t select;  // per nibble j: j, or j + 4 (the negative table) when its sign bit is set
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(select) : "r"(word), "r"(0x88888888u), "r"(0x64206420u));
  select >>= 1;
  low_out = lookup4(index, select, low, low_positive);
  high_out = lookup4(index >> 16, select >> 16, high, high_positive);
}

// One lane's weights of one 128-K group: its 8 bytes of each of its stripe's four atoms, and the lookup tables of
// its two channels (lane/4 and lane/4 + 8).
struct GroupWeights {
  uint2 atoms[kAtomsPerGroup];
  uint2 table_low, table_high;
};

// The group's wgmma A fragments: per atom the four registers of rows lane/4 and lane/4 + 8 at K 4c.. and 16 + 4c..
// (c = lane % 4), in the order wgmma takes them.
__device__ __forceinline__ void convert_group(GroupWeights const& w, uint32_t (&a)[kAtomsPerGroup][4]) {
  uint2 const low_positive = positive_table(w.table_low), high_positive = positive_table(w.table_high);
#pragma unroll
  for (int i = 0; i < kAtomsPerGroup; ++i) {
    lookup8(w.atoms[i].x, w.table_low, low_positive, w.table_high, high_positive, a[i][0], a[i][1]);
    lookup8(w.atoms[i].y, w.table_low, low_positive, w.table_high, high_positive, a[i][2], a[i][3]);
  }
}

template <class Out>
__device__ __forceinline__ Out to_output(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 to_output<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half to_output<__half>(float x) { return __float2half_rn(x); }

}  // namespace w4a8moe::gemm
