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
#include "gemm/stream_plan.h"  // kStripeChannels, kAtomK, kAtomBytes, kAtomsPerGroup

namespace w4a8moe::gemm {

// Bytes between consecutive K atoms of one stripe.
__device__ __forceinline__ size_t atom_stride(int n) { return size_t(n / kStripeChannels) * kAtomBytes; }

struct Chunk {
  int expert;
  int rows;
  int64_t first_row;
};

// Expert e's rows and its first row (0 past the last expert); no rows where its offsets are not
// expert_rows_valid(). kBeforeWait: loaded through L2, as a kernel reads them before its PDL wait
// (GroupedGemmParams::offsets_before_wait); after it through L1, where a worker's later searches find them.
template <bool kBeforeWait = false>
__device__ __forceinline__ int64_t expert_rows(GroupedGemmParams const& p, int e, int64_t* begin) {
  *begin = 0;
  if (e >= p.shape.num_experts) return 0;
  *begin = kBeforeWait ? __ldcg(p.expert_offsets + e) : p.expert_offsets[e];
  int64_t const end = kBeforeWait ? __ldcg(p.expert_offsets + e + 1) : p.expert_offsets[e + 1];
  return expert_rows_valid(*begin, end, p.total_rows) ? end - *begin : 0;
}

// The chunk-th chunk of kChunkRows rows, counting each expert's rows in expert order; an expert whose offsets are
// not expert_rows_valid() holds none. False when there are fewer chunks. Called by the whole block of kThreads.
// Where the scan saw every expert (it stops at the chunk), thread 0 lowers *chunk_count to the call's chunk count.
template <int kThreads, int kChunkRows, bool kBeforeWait = false>
__device__ bool find_chunk(GroupedGemmParams const& p, int64_t chunk, Chunk* found, int64_t* chunk_count) {
  using Scan = cub::BlockScan<int64_t, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ bool done;
  if (threadIdx.x == 0) done = false;
  int64_t chunks_before = 0;
  for (int base = 0; base < p.shape.num_experts; base += kThreads) {
    int const e = base + int(threadIdx.x);
    int64_t begin;
    int64_t const rows = expert_rows<kBeforeWait>(p, e, &begin);
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
    if (threadIdx.x == 0 && base + kThreads >= p.shape.num_experts) *chunk_count = min(*chunk_count, chunks_before);
    __syncthreads();  // scan_storage is reused, and `done` is read below
    if (done) return true;
  }
  return false;
}

// Where a warp's search for chunks stands: the chunks before expert `expert` (a multiple of 32). A warp that asks for
// non-decreasing chunk indices resumes from here instead of rescanning the offsets from expert 0.
struct ChunkCursor {
  int expert = 0;
  int64_t chunks_before = 0;
};

// find_chunk for one warp (all 32 lanes), from the cursor on; every lane gets the chunk. The indices asked for must
// not decrease between calls with the same cursor. The offsets of 128 experts load at once (one round trip to L2
// for Qwen3-30B-A3B's 128 experts), then the warp scans them 32 at a time. (The four scans interleaved failed
// GroupedGemm.StreamKernelPersistentWorkers every time on the H200; bench/NOTES.md §9c.)
template <int kChunkRows>
__device__ bool find_chunk_in_warp(GroupedGemmParams const& p, int64_t chunk, ChunkCursor& cursor, Chunk* found) {
  constexpr int kWindows = 4;
  int const lane = int(threadIdx.x) % 32;
  while (cursor.expert < p.shape.num_experts) {
    int64_t begin[kWindows], rows[kWindows];
#pragma unroll
    for (int w = 0; w < kWindows; ++w) rows[w] = expert_rows(p, cursor.expert + 32 * w + lane, &begin[w]);
    bool hit = false;  // no early exit from the loop: it must unroll for begin[] and rows[] to stay in registers
#pragma unroll
    for (int w = 0; w < kWindows; ++w) {
      if (hit || cursor.expert >= p.shape.num_experts) continue;
      int64_t const chunks = (rows[w] + kChunkRows - 1) / kChunkRows;
      int64_t inclusive = chunks;
#pragma unroll
      for (int d = 1; d < 32; d *= 2) {
        int64_t const before = __shfl_up_sync(0xFFFFFFFFu, inclusive, d);
        if (lane >= d) inclusive += before;
      }
      int64_t const first = cursor.chunks_before + inclusive - chunks;
      unsigned const holders = __ballot_sync(0xFFFFFFFFu, chunk >= first && chunk < first + chunks);
      if (holders != 0) {  // the cursor stays on this window: the next index may be in it
        int const holder = __ffs(holders) - 1;
        int64_t const skipped = (chunk - __shfl_sync(0xFFFFFFFFu, first, holder)) * kChunkRows;
        int64_t const holder_rows = __shfl_sync(0xFFFFFFFFu, rows[w], holder);
        *found = {cursor.expert + holder, int(min(int64_t(kChunkRows), holder_rows - skipped)),
                  __shfl_sync(0xFFFFFFFFu, begin[w], holder) + skipped};
        hit = true;
      } else {
        cursor.chunks_before += __shfl_sync(0xFFFFFFFFu, inclusive, 31);
        cursor.expert += 32;
      }
    }
    if (hit) return true;
  }
  return false;
}

__device__ __forceinline__ uint2 load_streaming(void const* address) {
  uint2 v;
  asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "l"(address));
  return v;
}

// The same bytes through L2 only, as a kernel reads before its PDL wait (common/pdl.cuh).
__device__ __forceinline__ uint2 load_through_l2(void const* address) {
  uint2 v;
  asm volatile("ld.global.cg.v2.u32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "l"(address));
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
  uint32_t low;  // one LOP3, (a & b) ^ c, where the compiler emits an AND and an XOR
  asm("lop3.b32 %0, %1, %2, %3, 0x6A;" : "=r"(low) : "r"(negative.x), "r"(0xFFFFFF00u), "r"(0x80808080u));
  return {low, negative.y ^ 0x80808080u};
}

// A whole table from its odd entries, as the packed format's odd tables hold them (prepack::expand_odd_table).
__device__ __forceinline__ uint2 whole_table(uint32_t odd) {
  prepack::TableWords const t = prepack::expand_odd_table(odd);
  return {t.low, t.high};
}

// Four LUT-encoded nibbles (the low 16 bits of index and select) -> four e4m3 bytes: the three low bits pick the
// table entry, the sign bit picks the negative or the positive table.
__device__ __forceinline__ uint32_t lookup4(uint32_t index, uint32_t select, uint2 negative, uint2 positive) {
  uint32_t const neg = prmt(negative.x, negative.y, index);
  uint32_t const pos = prmt(positive.x, positive.y, index);
  return prmt(pos, neg, select);
}

// Multipliers that move lookup8's shifts to the FMA pipe (hi(x * 2^(32-s)) = x >> s). They live in constant memory
// so that ptxas cannot see their values and strength-reduce the multiplies back into shifts. No addends: ptxas passes
// mad.hi's addend as a register pair and rematerialises it with two moves per use.
struct ShiftMultipliers {
  uint32_t right_1;   // 2^31
  uint32_t right_16;  // 2^16
  uint32_t right_17;  // 2^15
};
static __constant__ ShiftMultipliers kShiftMultipliers = {1u << 31, 1u << 16, 1u << 15};

// x >> s as SHF (integer pipe) or, kOnFmaPipe, as IMAD.HI by `multiplier` = 2^(32-s).
template <bool kOnFmaPipe>
__device__ __forceinline__ uint32_t shift_right(uint32_t x, int s, uint32_t multiplier) {
  if constexpr (kOnFmaPipe) {
    uint32_t out;
    asm("mul.hi.u32 %0, %1, %2;" : "=r"(out) : "r"(x), "r"(multiplier));
    return out;
  } else {
    return x >> s;
  }
}

// Eight LUT-encoded nibbles of one word (nibbles 0-3 of channel `low`, 4-7 of channel `high`, as the reorder atom
// stores them) -> four e4m3 of each channel: two LOP3, six PRMT and three shifts. kShiftsOnFmaPipe moves the shifts
// off the integer pipe, which LOP3 and PRMT share: 4 % faster for the wgmma kernel at DeepSeek-V3's and Mixtral's
// larger K, 2.5 % slower for the mma.sync decode kernel, whose FMA pipe also converts e4m3 to f16 (H200,
// bench/NOTES.md §9).
template <bool kShiftsOnFmaPipe>
__device__ __forceinline__ void lookup8(uint32_t word, uint2 low, uint2 low_positive, uint2 high, uint2 high_positive,
                                        uint32_t& low_out, uint32_t& high_out) {
  ShiftMultipliers const& m = kShiftMultipliers;
  uint32_t const index = word & 0x77777777u;
  // Per nibble j: its sign bit at bit 3 over j << 1 at bits 0-2; shifted right by one, j or j + 4 (the negative
  // table) in the low half, and shifted by 17, the same for nibbles 4-7.
  uint32_t select;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(select) : "r"(word), "r"(0x88888888u), "r"(0x64206420u));
  low_out = lookup4(index, shift_right<kShiftsOnFmaPipe>(select, 1, m.right_1), low, low_positive);
  high_out = lookup4(shift_right<kShiftsOnFmaPipe>(index, 16, m.right_16),
                     shift_right<kShiftsOnFmaPipe>(select, 17, m.right_17), high, high_positive);
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
    lookup8<true>(w.atoms[i].x, w.table_low, low_positive, w.table_high, high_positive, a[i][0], a[i][1]);
    lookup8<true>(w.atoms[i].y, w.table_low, low_positive, w.table_high, high_positive, a[i][2], a[i][3]);
  }
}

template <class Out>
__device__ __forceinline__ Out to_output(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 to_output<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half to_output<__half>(float x) { return __float2half_rn(x); }

}  // namespace w4a8moe::gemm
