//! [`Ops`] on an NVIDIA GPU: FP16 buffers, cuBLAS `GemmStridedBatchedEx` with FP32
//! accumulation (tensor cores) for every matrix product, and the element-wise kernels of
//! `encoder_kernels.cu` compiled once per device with NVRTC. [`GpuMiniLm`] holds one copy of
//! the weights per GPU and spreads mini-batches over them (data parallel, results in order).
//! Device setup and errors come from [`crate::cuda`].

use std::sync::Arc;

use cudarc::cublas::{result as blas, sys as blas_sys, CudaBlas};
use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg,
};
use half::f16;

use super::{forward, Gemm, HostWeights, Norm, Ops, Weights, KERNEL_SOURCE};
use crate::cuda::{cublas, devices_to_use, driver, CudaError, OpenDevice};
use crate::encoder::TokenBatch;

const THREADS: u32 = 128;

/// Compiles the encoder's kernels to PTX. Needs only libnvrtc, no GPU.
fn compile_kernels() -> Result<cudarc::nvrtc::Ptx, CudaError> {
    crate::cuda::compile(KERNEL_SOURCE)
}

/// The element-wise kernels of `encoder_kernels.cu`, loaded on one GPU.
struct ElementwiseKernels {
    embed_layernorm: CudaFunction,
    bias_activation: CudaFunction,
    bias_residual_layernorm: CudaFunction,
    masked_softmax: CudaFunction,
    mean_pool_normalize: CudaFunction,
}

/// One GPU's stream, cuBLAS handle and kernels.
pub(crate) struct CudaOps {
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    kernels: ElementwiseKernels,
}

fn grid(threads: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((threads as u32).div_ceil(THREADS).max(1), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaOps {
    fn new(ordinal: usize, ptx: &cudarc::nvrtc::Ptx) -> Result<Self, CudaError> {
        let OpenDevice { ctx, stream, blas } = OpenDevice::new(ordinal)?;
        let module = ctx.load_module(ptx.clone()).map_err(driver)?;
        let load = |name: &str| module.load_function(name).map_err(driver);
        Ok(Self {
            kernels: ElementwiseKernels {
                embed_layernorm: load("embed_layernorm")?,
                bias_activation: load("bias_activation")?,
                bias_residual_layernorm: load("bias_residual_layernorm")?,
                masked_softmax: load("masked_softmax")?,
                mean_pool_normalize: load("mean_pool_normalize")?,
            },
            stream,
            blas,
        })
    }
}

fn int(n: usize) -> i32 {
    i32::try_from(n).expect("dimension fits in i32")
}

impl Ops for CudaOps {
    type Buf = CudaSlice<f16>;
    type Ids = CudaSlice<u32>;
    type Error = CudaError;

    fn upload(&self, host: &[f32]) -> Result<CudaSlice<f16>, CudaError> {
        let half: Vec<f16> = host.iter().map(|&x| f16::from_f32(x)).collect();
        self.stream.clone_htod(&half).map_err(driver)
    }

    fn upload_ids(&self, host: &[u32]) -> Result<CudaSlice<u32>, CudaError> {
        self.stream.clone_htod(host).map_err(driver)
    }

    fn zeros(&self, len: usize) -> Result<CudaSlice<f16>, CudaError> {
        self.stream.alloc_zeros(len.max(1)).map_err(driver)
    }

    fn gemm(
        &self,
        g: &Gemm,
        (a, a0): (&CudaSlice<f16>, usize),
        (b, b0): (&CudaSlice<f16>, usize),
        (c, c0): (&mut CudaSlice<f16>, usize),
    ) -> Result<(), CudaError> {
        let op = |t: bool| match t {
            true => blas_sys::cublasOperation_t::CUBLAS_OP_T,
            false => blas_sys::cublasOperation_t::CUBLAS_OP_N,
        };
        let half = blas_sys::cudaDataType_t::CUDA_R_16F;
        let (alpha, beta) = (g.alpha, 0f32);
        let bytes = std::mem::size_of::<f16>() as u64;
        let (a_ptr, _a_sync) = a.device_ptr(&self.stream);
        let (b_ptr, _b_sync) = b.device_ptr(&self.stream);
        let (c_ptr, _c_sync) = c.device_ptr_mut(&self.stream);
        // SAFETY: the forward pass sizes every buffer for the shapes, offsets and strides its
        // GEMMs describe (checked on the host executor), all buffers live on this stream, and
        // the scalars outlive the call.
        unsafe {
            blas::gemm_strided_batched_ex(
                *self.blas.handle(),
                op(g.trans_a),
                op(g.trans_b),
                int(g.m),
                int(g.n),
                int(g.k),
                (&alpha) as *const f32 as *const _,
                (a_ptr + a0 as u64 * bytes) as *const _,
                half,
                int(g.lda),
                g.stride_a as i64,
                (b_ptr + b0 as u64 * bytes) as *const _,
                half,
                int(g.ldb),
                g.stride_b as i64,
                (&beta) as *const f32 as *const _,
                (c_ptr + c0 as u64 * bytes) as *mut _,
                half,
                int(g.ldc),
                g.stride_c as i64,
                int(g.batch),
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(cublas)
    }

    fn embed_layernorm(
        &self,
        ids: &CudaSlice<u32>,
        w: &Weights<CudaSlice<f16>>,
        out: &mut CudaSlice<f16>,
        tokens: usize,
        seq: usize,
    ) -> Result<(), CudaError> {
        let (tokens_i, seq_i, hidden) = (int(tokens), int(seq), int(w.hidden));
        let mut launch = self.stream.launch_builder(&self.kernels.embed_layernorm);
        launch
            .arg(ids)
            .arg(&w.word)
            .arg(&w.position)
            .arg(&w.token_type)
            .arg(&w.embed_norm.gamma)
            .arg(&w.embed_norm.beta)
            .arg(out)
            .arg(&tokens_i)
            .arg(&seq_i)
            .arg(&hidden)
            .arg(&w.eps);
        // SAFETY: the argument list matches the kernel's signature; ids index rows of the
        // word table (the tokenizer's vocabulary is the model's) and positions stay below
        // the model's maximum (the tokenizer truncates).
        unsafe { launch.launch(grid(tokens)) }.map_err(driver)?;
        Ok(())
    }

    fn bias_activation(
        &self,
        y: &mut CudaSlice<f16>,
        bias: &CudaSlice<f16>,
        rows: usize,
        cols: usize,
        gelu: bool,
    ) -> Result<(), CudaError> {
        let (rows_i, cols_i, gelu) = (int(rows), int(cols), i32::from(gelu));
        let mut launch = self.stream.launch_builder(&self.kernels.bias_activation);
        launch.arg(y).arg(bias).arg(&rows_i).arg(&cols_i).arg(&gelu);
        // SAFETY: matches the kernel's signature; `y` holds rows × cols, `bias` cols.
        unsafe { launch.launch(grid(rows * cols)) }.map_err(driver)?;
        Ok(())
    }

    fn bias_residual_layernorm(
        &self,
        y: &CudaSlice<f16>,
        bias: &CudaSlice<f16>,
        residual: &CudaSlice<f16>,
        norm: &Norm<CudaSlice<f16>>,
        out: &mut CudaSlice<f16>,
        rows: usize,
        hidden: usize,
        eps: f32,
    ) -> Result<(), CudaError> {
        let (rows_i, hidden_i) = (int(rows), int(hidden));
        let mut launch = self
            .stream
            .launch_builder(&self.kernels.bias_residual_layernorm);
        launch
            .arg(y)
            .arg(bias)
            .arg(residual)
            .arg(&norm.gamma)
            .arg(&norm.beta)
            .arg(out)
            .arg(&rows_i)
            .arg(&hidden_i)
            .arg(&eps);
        // SAFETY: matches the kernel's signature; every row buffer holds rows × hidden and
        // `out` is none of the inputs.
        unsafe { launch.launch(grid(rows)) }.map_err(driver)?;
        Ok(())
    }

    fn masked_softmax(
        &self,
        scores: &mut CudaSlice<f16>,
        mask: &CudaSlice<u32>,
        batch: usize,
        heads: usize,
        seq: usize,
    ) -> Result<(), CudaError> {
        let (batch_i, heads_i, seq_i) = (int(batch), int(heads), int(seq));
        let mut launch = self.stream.launch_builder(&self.kernels.masked_softmax);
        launch
            .arg(scores)
            .arg(mask)
            .arg(&batch_i)
            .arg(&heads_i)
            .arg(&seq_i);
        // SAFETY: matches the kernel's signature; scores hold batch × heads × seq × seq.
        unsafe { launch.launch(grid(batch * heads * seq)) }.map_err(driver)?;
        Ok(())
    }

    fn mean_pool_normalize(
        &self,
        x: &CudaSlice<f16>,
        mask: &CudaSlice<u32>,
        batch: usize,
        seq: usize,
        hidden: usize,
    ) -> Result<Vec<f32>, CudaError> {
        let mut out = self
            .stream
            .alloc_zeros::<f32>(batch * hidden)
            .map_err(driver)?;
        let (batch_i, seq_i, hidden_i) = (int(batch), int(seq), int(hidden));
        let mut launch = self
            .stream
            .launch_builder(&self.kernels.mean_pool_normalize);
        launch
            .arg(x)
            .arg(mask)
            .arg(&mut out)
            .arg(&batch_i)
            .arg(&seq_i)
            .arg(&hidden_i);
        // SAFETY: matches the kernel's signature; `out` holds batch × hidden f32.
        unsafe { launch.launch(grid(batch)) }.map_err(driver)?;
        self.stream.clone_dtoh(&out).map_err(driver)
    }
}

/// MiniLM on one or more GPUs, FP16.
pub(crate) struct GpuMiniLm {
    devices: Vec<(CudaOps, Weights<CudaSlice<f16>>)>,
}

impl GpuMiniLm {
    /// Compiles the kernels and uploads the weights to the first `max_devices` GPUs (0 = all).
    pub(crate) fn new(weights: &HostWeights, max_devices: usize) -> Result<Self, CudaError> {
        let count = devices_to_use(max_devices)?;
        let ptx = compile_kernels()?;
        let devices = (0..count)
            .map(|ordinal| {
                let ops = CudaOps::new(ordinal, &ptx)?;
                let w = weights.upload(&ops)?;
                Ok((ops, w))
            })
            .collect::<Result<Vec<_>, CudaError>>()?;
        Ok(Self { devices })
    }

    pub(crate) fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Pooled embeddings (`batch × hidden` each) of every mini-batch, in order; mini-batch
    /// `i` runs on GPU `i mod devices`, all GPUs at once.
    pub(crate) fn embed(&self, batches: &[TokenBatch]) -> Result<Vec<Vec<f32>>, CudaError> {
        super::data_parallel(&self.devices, batches, |(ops, w), t| {
            forward(ops, w, &t.ids, &t.mask, t.batch, t.seq)
        })
    }
}

#[cfg(test)]
mod tests {
    /// NVRTC compiles the kernels on any machine with libnvrtc (no GPU needed); where the
    /// library is absent the GPU cannot be used either and the CPU path is tested instead.
    #[test]
    fn kernels_compile_with_nvrtc_where_it_is_installed() {
        if std::env::var_os("REQUIRE_NVRTC").is_none() && !nvrtc_present() {
            eprintln!("libnvrtc not found: kernel compilation not checked here");
            return;
        }
        let ptx = super::compile_kernels().expect("kernels compile");
        let text = ptx.to_src();
        for name in [
            "embed_layernorm",
            "bias_activation",
            "bias_residual_layernorm",
            "masked_softmax",
            "mean_pool_normalize",
        ] {
            assert!(text.contains(name), "{name} missing from the PTX");
        }
    }

    fn nvrtc_present() -> bool {
        // SAFETY: only looks for the library; loads nothing if it is absent.
        unsafe { cudarc::nvrtc::sys::is_culib_present() }
    }
}
