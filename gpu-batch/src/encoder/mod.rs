//! The text encoder: all-MiniLM-L6-v2 (384-d, cosine space) behind one batch-first API.
//!
//! Everything goes through [`TextEncoder::embed_batch`]: callers hand over many texts at once
//! and the encoder tokenises them and groups them into length-sorted mini-batches, which keeps
//! padding (and so wasted compute) low. This module holds what both devices share (loading,
//! the device choice, tokenisation, batching); the forward pass itself is [`cpu`] (candle,
//! FP32) or, with the `cuda` feature and a GPU present, [`gpu`] (FP16 on every visible GPU,
//! mini-batches spread over the devices).

mod cpu;
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
mod gpu;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::Deserialize;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

#[cfg(feature = "cuda")]
use crate::cuda::{self, CudaError};

/// Default location of the model, relative to the repository root (fetched by
/// `scripts/fetch-model.sh`).
pub const DEFAULT_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";

/// Texts longer than this many tokens are truncated (film titles and blurbs are far shorter).
const MAX_TOKENS: usize = 128;

/// Texts per mini-batch on the CPU (latency) and on a GPU (the design's throughput batch).
const CPU_BATCH: usize = 64;
#[cfg(feature = "cuda")]
const GPU_BATCH: usize = 256;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    /// FP16 on this many GPUs.
    Cuda {
        devices: usize,
    },
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda { .. } => "cuda",
        }
    }
}

/// Which device the encoder should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    /// The GPUs (at most `max_gpus`, 0 = all) when the `cuda` feature is built and a driver
    /// and a device are present, else the CPU, saying why in the log.
    PreferGpu {
        max_gpus: usize,
    },
}

impl Default for DeviceChoice {
    fn default() -> Self {
        Self::PreferGpu { max_gpus: 0 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "embedding model not found at {0}: run scripts/fetch-model.sh (or set the model directory in the config)"
    )]
    ModelMissing(PathBuf),
    #[error("cannot load the embedding model from {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("tokenizer failed: {0}")]
    Tokenize(String),
    #[error("model forward pass failed: {0}")]
    Compute(#[from] candle_core::Error),
    #[cfg(feature = "cuda")]
    #[error("GPU forward pass failed: {0}")]
    Gpu(#[from] CudaError),
}

/// The subset of the Hugging Face `config.json` that the forward pass (on either device)
/// needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
}

/// Tokenised mini-batch: ids and mask, `batch × seq` row-major.
pub(crate) struct TokenBatch {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
    pub batch: usize,
    pub seq: usize,
}

enum Model {
    Cpu(cpu::CpuMiniLm),
    #[cfg(feature = "cuda")]
    Gpu(gpu::GpuMiniLm),
}

/// The sentence encoder: tokenizer plus MiniLM, ready to embed batches.
pub struct TextEncoder {
    model: Model,
    tokenizer: Tokenizer,
    dim: usize,
    max_batch: usize,
    backend: Backend,
}

impl TextEncoder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`, on the GPUs
    /// when there are any (see [`DeviceChoice::PreferGpu`]).
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_on(dir, DeviceChoice::default())
    }

    /// Loads the model onto the chosen device.
    pub fn load_on(dir: &Path, choice: DeviceChoice) -> Result<Self, EmbedError> {
        let weights = dir.join("model.safetensors");
        for file in [
            &weights,
            &dir.join("config.json"),
            &dir.join("tokenizer.json"),
        ] {
            if !file.is_file() {
                return Err(EmbedError::ModelMissing(file.clone()));
            }
        }
        let load_err = |reason: String| EmbedError::Load {
            path: dir.to_path_buf(),
            reason,
        };
        let cfg: BertConfig = serde_json::from_slice(
            &std::fs::read(dir.join("config.json")).map_err(|e| load_err(e.to_string()))?,
        )
        .map_err(|e| load_err(format!("config.json: {e}")))?;

        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load_err(e.to_string()))?;
        // The shipped tokenizer pads every input to 128 tokens; pad to the batch's longest
        // instead (pooling masks the padding either way, but 128 wastes most of the compute).
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(cfg.max_position_embeddings),
                ..Default::default()
            }))
            .map_err(|e| load_err(e.to_string()))?;

        #[cfg(feature = "cuda")]
        if let DeviceChoice::PreferGpu { max_gpus } = choice {
            // Probe first: without a GPU the weights are not read a second time.
            let loaded = cuda::device_count().and_then(|_| {
                let host = gpu::HostWeights::load(&weights, &cfg)
                    .map_err(|e| CudaError::Driver(format!("weights: {e}")))?;
                gpu::GpuMiniLm::new(&host, max_gpus)
            });
            match loaded {
                Ok(gpu) => {
                    let devices = gpu.device_count();
                    tracing::info!(devices, "embedding model on the GPU (FP16)");
                    return Ok(Self {
                        model: Model::Gpu(gpu),
                        tokenizer,
                        dim: cfg.hidden_size,
                        max_batch: GPU_BATCH,
                        backend: Backend::Cuda { devices },
                    });
                }
                Err(why) => tracing::warn!(%why, "embedding on the CPU: no usable GPU"),
            }
        }
        #[cfg(not(feature = "cuda"))]
        if choice != DeviceChoice::Cpu {
            tracing::debug!("embedding on the CPU: built without the cuda feature");
        }
        let device = Device::Cpu;
        // SAFETY: the weights file is memory-mapped read-only and must not be modified while
        // the encoder lives; it is a model file nothing in this program writes.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
            .map_err(|e| load_err(e.to_string()))?;
        let model = cpu::CpuMiniLm::load(vb, &cfg).map_err(|e| load_err(e.to_string()))?;
        Ok(Self {
            model: Model::Cpu(model),
            tokenizer,
            dim: cfg.hidden_size,
            max_batch: CPU_BATCH,
            backend: Backend::Cpu,
        })
    }

    /// Embedding dimension (384 for MiniLM-L6).
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Embeds every text; output `i` belongs to input `i`, each L2-normalised.
    pub fn embed_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // Sort by length so each mini-batch pads to a similar length.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].as_ref().len());
        let chunks: Vec<&[usize]> = order.chunks(self.max_batch).collect();
        let mut out = vec![Vec::new(); texts.len()];
        match &self.model {
            Model::Cpu(model) => {
                for chunk in chunks {
                    let inputs: Vec<&str> = chunk.iter().map(|&i| texts[i].as_ref()).collect();
                    let t = self.tokenize(&inputs)?;
                    let pooled = model.embed(&t.ids, &t.mask, t.batch, t.seq)?;
                    for (&i, row) in chunk.iter().zip(pooled.to_vec2::<f32>()?) {
                        out[i] = row;
                    }
                }
            }
            #[cfg(feature = "cuda")]
            Model::Gpu(gpu) => {
                // Tokenise everything first so every GPU gets mini-batches at once.
                let batches = chunks
                    .iter()
                    .map(|chunk| {
                        let inputs: Vec<&str> = chunk.iter().map(|&i| texts[i].as_ref()).collect();
                        self.tokenize(&inputs)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                for (chunk, pooled) in chunks.iter().zip(gpu.embed(&batches)?) {
                    for (&i, row) in chunk.iter().zip(pooled.chunks_exact(self.dim)) {
                        out[i] = row.to_vec();
                    }
                }
            }
        }
        Ok(out)
    }

    /// Embeds one text (a batch of one).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self.embed_batch(&[text])?.pop().unwrap_or_default())
    }

    fn tokenize(&self, texts: &[&str]) -> Result<TokenBatch, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        let seq = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(texts.len() * seq);
        let mut mask = Vec::with_capacity(texts.len() * seq);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        Ok(TokenBatch {
            ids,
            mask,
            batch: texts.len(),
            seq,
        })
    }
}

/// The model the crate's own tests use: `GPU_BATCH_MODEL_DIR`, else the repository's copy.
#[cfg(test)]
pub(crate) fn test_model_dir() -> PathBuf {
    std::env::var_os("GPU_BATCH_MODEL_DIR").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(DEFAULT_MODEL_DIR)
        },
        PathBuf::from,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoder on the backend `load` picks (the GPUs where a driver and a device exist,
    /// else the CPU — the fallback this tests on machines without CUDA) agrees with the CPU
    /// encoder on real texts, across several mini-batches, in input order.
    #[test]
    fn encoder_on_its_selected_backend_matches_the_cpu_encoder() {
        let dir = test_model_dir();
        let cpu = TextEncoder::load_on(&dir, DeviceChoice::Cpu).expect("model present");
        let selected = TextEncoder::load_on(&dir, DeviceChoice::default()).expect("model present");
        #[cfg(feature = "cuda")]
        match crate::cuda::device_count() {
            Ok(n) => assert_eq!(selected.backend(), Backend::Cuda { devices: n }),
            Err(_) => assert_eq!(selected.backend(), Backend::Cpu),
        }
        #[cfg(not(feature = "cuda"))]
        assert_eq!(selected.backend(), Backend::Cpu);
        let texts: Vec<String> = (0..300)
            .map(|i| match i % 3 {
                0 => format!("Film {i}: a quiet drama about a family farm"),
                1 => format!(
                    "A loud action sequel number {i} with car chases and explosions in the desert"
                ),
                _ => format!("documentary {i}"),
            })
            .collect();
        let want = cpu.embed_batch(&texts).unwrap();
        let got = selected.embed_batch(&texts).unwrap();
        for (i, (a, b)) in want.iter().zip(&got).enumerate() {
            let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            assert!(
                cos >= 0.999,
                "text {i}: cosine {cos} on {:?}",
                selected.backend()
            );
        }
    }

    #[test]
    fn missing_model_is_a_clear_error() {
        let err = TextEncoder::load(Path::new("/nonexistent/model"))
            .err()
            .unwrap();
        assert!(matches!(err, EmbedError::ModelMissing(_)));
        assert!(err.to_string().contains("scripts/fetch-model.sh"));
    }
}
