// Runs the kernels of encoder_kernels.cu on the host, one emulated thread after another over
// the launch grid, so the tests can compare their exact semantics with the host reference.
//   encoder_kernels_host KERNEL DIR [int or float arguments...]
// Pointer argument i is read from DIR/argI.bin (raw little-endian) and written back to
// DIR/argI.out after the kernel ran; scalar arguments come on the command line in order.
#include <cmath>
#include <math.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#define KERNELS_ON_HOST
typedef unsigned short half_t;
typedef unsigned long long u64;
struct Dim3 { unsigned x = 0; };
static Dim3 blockIdx, threadIdx, blockDim;
#define __global__
#define __device__
#define __forceinline__ inline

static inline float h2f(half_t h) { _Float16 f; std::memcpy(&f, &h, 2); return (float)f; }
static inline half_t f2h(float x) { _Float16 f = (_Float16)x; half_t h; std::memcpy(&h, &f, 2); return h; }
static inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
// erff, fmaxf and sqrtf come from math.h; CUDA's fast exp is the plain one here.
#define __expf expf

#include "encoder_kernels.cu"

static std::string dir;

template <class T> static std::vector<T> load(int i) {
    std::ifstream f(dir + "/arg" + std::to_string(i) + ".bin", std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<T> v(bytes.size() / sizeof(T));
    std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
    return v;
}

template <class T> static void save(int i, const std::vector<T>& v) {
    std::ofstream f(dir + "/arg" + std::to_string(i) + ".out", std::ios::binary);
    f.write(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// Every thread of a 1-D launch of `threads` threads in blocks of 128, one after another.
static void launch(long threads, const std::function<void()>& kernel) {
    blockDim.x = 128;
    for (long t = 0; t < (threads + 127) / 128 * 128; ++t) {
        blockIdx.x = t / 128;
        threadIdx.x = t % 128;
        kernel();
    }
}

int main(int argc, char** argv) {
    if (argc < 3) return 2;
    std::string k = argv[1];
    dir = argv[2];
    auto i = [&](int n) { return std::atoi(argv[3 + n]); };
    auto f = [&](int n) { return (float)std::atof(argv[3 + n]); };
    if (k == "embed_layernorm") {
        auto ids = load<unsigned>(0); auto word = load<half_t>(1), pos = load<half_t>(2),
             tt = load<half_t>(3), g = load<half_t>(4), b = load<half_t>(5), out = load<half_t>(6);
        launch(i(0), [&] { embed_layernorm(ids.data(), word.data(), pos.data(), tt.data(), g.data(),
                                           b.data(), out.data(), i(0), i(1), i(2), f(3)); });
        save(6, out);
    } else if (k == "bias_activation") {
        auto y = load<half_t>(0), bias = load<half_t>(1);
        launch((long)i(0) * i(1), [&] { bias_activation(y.data(), bias.data(), i(0), i(1), i(2)); });
        save(0, y);
    } else if (k == "bias_residual_layernorm") {
        auto y = load<half_t>(0), bias = load<half_t>(1), res = load<half_t>(2), g = load<half_t>(3),
             b = load<half_t>(4), out = load<half_t>(5);
        launch(i(0), [&] { bias_residual_layernorm(y.data(), bias.data(), res.data(), g.data(),
                                                   b.data(), out.data(), i(0), i(1), f(2)); });
        save(5, out);
    } else if (k == "masked_softmax") {
        auto s = load<half_t>(0); auto mask = load<unsigned>(1);
        launch((long)i(0) * i(1) * i(2), [&] { masked_softmax(s.data(), mask.data(), i(0), i(1), i(2)); });
        save(0, s);
    } else if (k == "mean_pool_normalize") {
        auto x = load<half_t>(0); auto mask = load<unsigned>(1); auto out = load<float>(2);
        launch(i(0), [&] { mean_pool_normalize(x.data(), mask.data(), out.data(), i(0), i(1), i(2)); });
        save(2, out);
    } else {
        std::fprintf(stderr, "unknown kernel %s\n", k.c_str());
        return 2;
    }
    return 0;
}
