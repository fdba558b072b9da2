//! Batch-first text embedding with all-MiniLM-L6-v2 (384-d, cosine space), request batching
//! and batched scoring.
//!
//! Where things are:
//! - `encoder/`: the text encoder, [`TextEncoder`] and its types (re-exported here). Its
//!   `mod.rs` loads the model, picks the device, tokenises and groups texts into
//!   length-sorted mini-batches; `cpu.rs` is the forward pass on candle (FP32); `gpu/` is the
//!   forward pass in FP16 on every visible GPU (feature `cuda`), written against a few device
//!   primitives with the CUDA C of `encoder_kernels.cu`, and checked on the host by the tests.
//! - [`batcher`]: coalesces concurrent single requests into batches for the encoder.
//! - [`scorer`]: many queries against many candidates in FP32, FP16 or INT8, top-k per
//!   query, on the CPU or (feature `cuda`) through cuBLAS on the GPUs.
//! - `cuda` (feature `cuda`): the CUDA plumbing both GPU paths share — device probe,
//!   context, stream and cuBLAS setup, NVRTC compilation — and their error type, `CudaError`.
//! - [`kernels`]: the CPU SIMD inner-product kernels the scorer and core-api's vector index
//!   use (CPU code only; the CUDA kernels are the encoder's `encoder_kernels.cu`).

pub mod batcher;
#[cfg(feature = "cuda")]
pub mod cuda;
mod encoder;
pub mod kernels;
pub mod scorer;

pub use encoder::{Backend, BertConfig, DeviceChoice, EmbedError, TextEncoder, DEFAULT_MODEL_DIR};

/// The INT8 quantisation at the path core-api's vector index imports it from; it moves out
/// with [`kernels`] into the index's own crate.
pub mod scoring {
    pub use crate::scorer::quantize_i8;
}
