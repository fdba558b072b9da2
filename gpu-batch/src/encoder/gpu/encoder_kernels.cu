// Element-wise kernels of the MiniLM forward pass (compiled at run time with NVRTC).
// Buffers are FP16; arithmetic is FP32. Row kernels give one thread a whole row: rows are
// short (384 values, or up to 128 attention scores) and this keeps every kernel free of
// shared memory and barriers, so each is a plain loop with the host reference's semantics.
//
// FP16 values are carried as their 16 bits and converted with the PTX instructions
// cuda_fp16.h itself uses, so the source needs no header (NVRTC has no include path here).
// The tests compile this file for the host too (encoder_kernels_host.cpp), which brings its
// own definitions of these.
#ifndef KERNELS_ON_HOST
typedef unsigned short half_t;
typedef unsigned long long u64;

__device__ __forceinline__ float h2f(half_t h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ half_t f2h(float f) {
    half_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
#endif

#define ROW_INDEX() (blockIdx.x * blockDim.x + threadIdx.x)

// o = LayerNorm(a + b + c) over one row of `hidden` values; both LayerNorm kernels are this.
__device__ __forceinline__ void layernorm_of_sum(const half_t* a, const half_t* b,
                                                 const half_t* c, const half_t* gamma,
                                                 const half_t* beta, half_t* o, int hidden,
                                                 float eps) {
    float mean = 0.f;
    for (int i = 0; i < hidden; ++i) mean += h2f(a[i]) + h2f(b[i]) + h2f(c[i]);
    mean /= hidden;
    float var = 0.f;
    for (int i = 0; i < hidden; ++i) {
        float v = h2f(a[i]) + h2f(b[i]) + h2f(c[i]) - mean;
        var += v * v;
    }
    float inv = rsqrtf(var / hidden + eps);
    for (int i = 0; i < hidden; ++i) {
        float v = h2f(a[i]) + h2f(b[i]) + h2f(c[i]) - mean;
        o[i] = f2h(v * inv * h2f(gamma[i]) + h2f(beta[i]));
    }
}

extern "C" __global__ void embed_layernorm(const unsigned int* ids, const half_t* word,
                                           const half_t* position, const half_t* token_type,
                                           const half_t* gamma, const half_t* beta,
                                           half_t* out, int tokens, int seq, int hidden,
                                           float eps) {
    int t = ROW_INDEX();
    if (t >= tokens) return;
    layernorm_of_sum(word + (u64)ids[t] * hidden, position + (u64)(t % seq) * hidden, token_type,
                     gamma, beta, out + (u64)t * hidden, hidden, eps);
}

extern "C" __global__ void bias_activation(half_t* y, const half_t* bias, int rows, int cols,
                                           int gelu) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (u64)rows * cols) return;
    float x = h2f(y[i]) + h2f(bias[i % cols]);
    if (gelu) x = 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    y[i] = f2h(x);
}

extern "C" __global__ void bias_residual_layernorm(const half_t* y, const half_t* bias,
                                                   const half_t* residual, const half_t* gamma,
                                                   const half_t* beta, half_t* out, int rows,
                                                   int hidden, float eps) {
    int r = ROW_INDEX();
    if (r >= rows) return;
    layernorm_of_sum(y + (u64)r * hidden, bias, residual + (u64)r * hidden, gamma, beta,
                     out + (u64)r * hidden, hidden, eps);
}

extern "C" __global__ void masked_softmax(half_t* scores, const unsigned int* mask, int batch,
                                          int heads, int seq) {
    int r = ROW_INDEX();
    if (r >= batch * heads * seq) return;
    const unsigned int* keys = mask + (u64)(r / (heads * seq)) * seq;
    half_t* s = scores + (u64)r * seq;
    float max = -3.0e38f;
    for (int j = 0; j < seq; ++j) {
        float l = h2f(s[j]) - (keys[j] ? 0.f : 1.0e4f);
        max = fmaxf(max, l);
    }
    float sum = 0.f;
    for (int j = 0; j < seq; ++j) sum += __expf(h2f(s[j]) - (keys[j] ? 0.f : 1.0e4f) - max);
    for (int j = 0; j < seq; ++j) {
        float l = h2f(s[j]) - (keys[j] ? 0.f : 1.0e4f);
        s[j] = f2h(__expf(l - max) / sum);
    }
}

extern "C" __global__ void mean_pool_normalize(const half_t* x, const unsigned int* mask,
                                               float* out, int batch, int seq, int hidden) {
    int b = ROW_INDEX();
    if (b >= batch) return;
    float* o = out + (u64)b * hidden;
    int count = 0;
    for (int j = 0; j < seq; ++j) count += mask[(u64)b * seq + j] != 0;
    for (int i = 0; i < hidden; ++i) o[i] = 0.f;
    for (int j = 0; j < seq; ++j) {
        if (!mask[(u64)b * seq + j]) continue;
        const half_t* row = x + ((u64)b * seq + j) * hidden;
        for (int i = 0; i < hidden; ++i) o[i] += h2f(row[i]);
    }
    float n = count > 0 ? (float)count : 1.f;
    float norm = 0.f;
    for (int i = 0; i < hidden; ++i) norm += (o[i] / n) * (o[i] / n);
    norm = fmaxf(sqrtf(norm), 1e-12f);
    for (int i = 0; i < hidden; ++i) o[i] = o[i] / n / norm;
}
