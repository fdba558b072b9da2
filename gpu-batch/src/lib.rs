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
//!
//! The scorer's CPU path uses the SIMD inner-product kernels of the vector index's crate
//! (`vector_index::distance`), the same kernels the index searches with.

pub mod batcher;
#[cfg(feature = "cuda")]
pub mod cuda;
mod encoder;
pub mod scorer;

pub use encoder::{Backend, BertConfig, DeviceChoice, EmbedError, TextEncoder, DEFAULT_MODEL_DIR};
