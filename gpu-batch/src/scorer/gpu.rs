//! Batched scoring on NVIDIA GPUs through cuBLAS (feature `cuda`). The candidate matrix is
//! uploaded once per device (split by rows over all visible GPUs); each batch of queries is
//! one GEMM per device — SGEMM for FP32, FP16 inputs with FP32 accumulation on tensor cores,
//! INT8 inputs with INT32 accumulation — and the per-query top-k is taken on the host from
//! the score columns. No CUDA C of its own: cuBLAS does all the device work. Device setup and
//! errors come from [`crate::cuda`].

use std::sync::Arc;

use cudarc::cublas::{result as blas, sys as blas_sys, CudaBlas};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use half::f16;
use rayon::prelude::*;

use super::{Precision, Scored, TopK};
use crate::cuda::{cublas, devices_to_use, driver, CudaError, OpenDevice};
use vector_index::distance::quantize_i8;

/// Queries scored per GEMM: bounds the score buffer (rows × 256 × 4 B per device).
const QUERY_BATCH: usize = 256;

enum DeviceRows {
    F32(CudaSlice<f32>),
    F16(CudaSlice<f16>),
    Int8 {
        codes: CudaSlice<i8>,
        scales: Vec<f32>,
    },
}

/// The rows `first..first + len` of the candidate matrix on one GPU.
struct DevicePart {
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    first: usize,
    len: usize,
    rows: DeviceRows,
}

/// The candidate matrix on one or more GPUs, scored with cuBLAS.
pub struct GpuScorer {
    dim: usize,
    len: usize,
    precision: Precision,
    parts: Vec<DevicePart>,
}

impl GpuScorer {
    /// Uploads `vectors` (row-major, `dim` per row) at `precision`, split by rows over the
    /// first `max_devices` GPUs (0 = all).
    pub fn new(
        vectors: &[f32],
        dim: usize,
        precision: Precision,
        max_devices: usize,
    ) -> Result<Self, CudaError> {
        assert!(dim > 0 && vectors.len().is_multiple_of(dim));
        let count = devices_to_use(max_devices)?;
        let len = vectors.len() / dim;
        let per_device = len.div_ceil(count.max(1)).max(1);
        let mut parts = Vec::with_capacity(count);
        for (ordinal, chunk) in vectors.chunks(per_device * dim).enumerate() {
            let OpenDevice { stream, blas, .. } = OpenDevice::new(ordinal)?;
            let rows = match precision {
                Precision::F32 => DeviceRows::F32(stream.clone_htod(chunk).map_err(driver)?),
                Precision::F16 => {
                    let host: Vec<f16> = chunk.iter().map(|&x| f16::from_f32(x)).collect();
                    DeviceRows::F16(stream.clone_htod(&host).map_err(driver)?)
                }
                Precision::Int8 => {
                    let mut codes = Vec::with_capacity(chunk.len());
                    let mut scales = Vec::with_capacity(chunk.len() / dim);
                    for row in chunk.chunks_exact(dim) {
                        let (c, s) = quantize_i8(row);
                        codes.extend(c);
                        scales.push(s);
                    }
                    DeviceRows::Int8 {
                        codes: stream.clone_htod(&codes).map_err(driver)?,
                        scales,
                    }
                }
            };
            parts.push(DevicePart {
                stream,
                blas,
                first: ordinal * per_device,
                len: chunk.len() / dim,
                rows,
            });
        }
        Ok(Self {
            dim,
            len,
            precision,
            parts,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn device_count(&self) -> usize {
        self.parts.len()
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Top-k rows for every query (row-major, `dim` per query), best first, ties by lower
    /// row — the same contract as the CPU matrix. Devices work in parallel; their per-query
    /// lists are merged.
    pub fn top_k_batch(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Scored>>, CudaError> {
        assert!(
            queries.len().is_multiple_of(self.dim),
            "queries must be rows of {}",
            self.dim
        );
        let n_queries = queries.len() / self.dim;
        let per_device: Vec<Vec<Vec<Scored>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .parts
                .iter()
                .map(|part| scope.spawn(move || self.part_top_k(part, queries, k)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("GPU worker panicked"))
                .collect::<Result<_, _>>()
        })?;
        Ok((0..n_queries)
            .map(|q| {
                let mut top = TopK::new(k);
                for lists in &per_device {
                    for s in &lists[q] {
                        top.offer(s.row, s.score);
                    }
                }
                top.into_sorted()
            })
            .collect())
    }

    fn part_top_k(
        &self,
        part: &DevicePart,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<Scored>>, CudaError> {
        let dim = self.dim;
        let mut out = Vec::with_capacity(queries.len() / dim);
        for batch in queries.chunks(QUERY_BATCH * dim) {
            let q = batch.len() / dim;
            let scores = self.scores(part, batch, q)?;
            // Column j of the result holds query j's score for every row of this part.
            out.par_extend(scores.par_chunks_exact(part.len).map(|column| {
                let mut top = TopK::new(k);
                for (r, &s) in column.iter().enumerate() {
                    top.offer((part.first + r) as u32, s);
                }
                top.into_sorted()
            }));
        }
        Ok(out)
    }

    /// One GEMM: scores[r + j·len] = row r · query j, as f32.
    fn scores(&self, part: &DevicePart, batch: &[f32], q: usize) -> Result<Vec<f32>, CudaError> {
        let stream = &part.stream;
        match &part.rows {
            DeviceRows::F32(a) => {
                let b = stream.clone_htod(batch).map_err(driver)?;
                let mut c = stream.alloc_zeros::<f32>(part.len * q).map_err(driver)?;
                self.gemm_ex(
                    part,
                    a,
                    &b,
                    &mut c,
                    q,
                    [blas_sys::cudaDataType_t::CUDA_R_32F; 2],
                    false,
                )?;
                stream.clone_dtoh(&c).map_err(driver)
            }
            DeviceRows::F16(a) => {
                let host: Vec<f16> = batch.iter().map(|&x| f16::from_f32(x)).collect();
                let b = stream.clone_htod(&host).map_err(driver)?;
                let mut c = stream.alloc_zeros::<f32>(part.len * q).map_err(driver)?;
                self.gemm_ex(
                    part,
                    a,
                    &b,
                    &mut c,
                    q,
                    [blas_sys::cudaDataType_t::CUDA_R_16F; 2],
                    false,
                )?;
                stream.clone_dtoh(&c).map_err(driver)
            }
            DeviceRows::Int8 { codes, scales } => {
                let mut q_codes = Vec::with_capacity(batch.len());
                let mut q_scales = Vec::with_capacity(q);
                for query in batch.chunks_exact(self.dim) {
                    let (c, s) = quantize_i8(query);
                    q_codes.extend(c);
                    q_scales.push(s);
                }
                let b = stream.clone_htod(&q_codes).map_err(driver)?;
                let mut c = stream.alloc_zeros::<i32>(part.len * q).map_err(driver)?;
                self.gemm_ex(
                    part,
                    codes,
                    &b,
                    &mut c,
                    q,
                    [blas_sys::cudaDataType_t::CUDA_R_8I; 2],
                    true,
                )?;
                let raw = stream.clone_dtoh(&c).map_err(driver)?;
                Ok(raw
                    .chunks_exact(part.len)
                    .zip(&q_scales)
                    .flat_map(|(column, qs)| {
                        column
                            .iter()
                            .zip(scales)
                            .map(move |(&dot, rs)| dot as f32 * qs * rs)
                    })
                    .collect())
            }
        }
    }

    /// C (len × q, column-major) = Aᵀ·B with A the part's rows (dim × len, column-major) and
    /// B the queries (dim × q); FP32 accumulation, or INT32 for INT8 inputs.
    #[allow(clippy::too_many_arguments)]
    fn gemm_ex<A, B, C, TA, TB, TC>(
        &self,
        part: &DevicePart,
        a: &A,
        b: &B,
        c: &mut C,
        q: usize,
        [a_type, b_type]: [blas_sys::cudaDataType_t; 2],
        integer: bool,
    ) -> Result<(), CudaError>
    where
        A: DevicePtr<TA>,
        B: DevicePtr<TB>,
        C: DevicePtrMut<TC>,
    {
        let stream = &part.stream;
        let (dim, rows, q) = (self.dim as i32, part.len as i32, q as i32);
        let (alpha_f, beta_f) = (1.0f32, 0.0f32);
        let (alpha_i, beta_i) = (1i32, 0i32);
        let (alpha, beta, c_type, compute) = match integer {
            false => (
                (&alpha_f) as *const f32 as *const _,
                (&beta_f) as *const f32 as *const _,
                blas_sys::cudaDataType_t::CUDA_R_32F,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
            true => (
                (&alpha_i) as *const i32 as *const _,
                (&beta_i) as *const i32 as *const _,
                blas_sys::cudaDataType_t::CUDA_R_32I,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32I,
            ),
        };
        let (a_ptr, _a_sync) = a.device_ptr(stream);
        let (b_ptr, _b_sync) = b.device_ptr(stream);
        let (c_ptr, _c_sync) = c.device_ptr_mut(stream);
        // SAFETY: the pointers come from live device allocations of the sizes the dimensions
        // describe (A: dim × rows, B: dim × q, C: rows × q), all on this part's stream, and
        // the scalars outlive the call.
        unsafe {
            blas::gemm_ex(
                *part.blas.handle(),
                blas_sys::cublasOperation_t::CUBLAS_OP_T,
                blas_sys::cublasOperation_t::CUBLAS_OP_N,
                rows,
                q,
                dim,
                alpha,
                a_ptr as *const _,
                a_type,
                dim,
                b_ptr as *const _,
                b_type,
                dim,
                beta,
                c_ptr as *mut _,
                c_type,
                rows,
                compute,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(cublas)
    }
}
