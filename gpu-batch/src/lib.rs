//! Batch-first text embedding with all-MiniLM-L6-v2 (384-d, cosine space).
//!
//! Everything goes through [`TextEncoder::embed_batch`]: callers hand over many texts at once
//! and the encoder groups them into length-sorted mini-batches, which keeps padding (and so
//! wasted compute) low. The CPU path runs on candle; a GPU backend slots in behind
//! [`Backend`] without changing the API.
//!
//! Around the encoder: [`batcher`] coalesces concurrent single requests into batches,
//! [`scoring`] scores many queries against many candidates in FP32, FP16 or INT8, and
//! [`kernels`] holds the SIMD inner-product kernels both the scorer and the index use.

pub mod batcher;
pub mod kernels;
mod minilm;
pub mod scoring;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

pub use minilm::BertConfig;

/// Default location of the model, relative to the repository root (fetched by
/// `scripts/fetch-model.sh`).
pub const DEFAULT_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";

/// Texts longer than this many tokens are truncated (film titles and blurbs are far shorter).
const MAX_TOKENS: usize = 128;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
        }
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
}

/// The sentence encoder: tokenizer plus MiniLM, ready to embed batches.
pub struct TextEncoder {
    model: minilm::MiniLm,
    tokenizer: Tokenizer,
    dim: usize,
    max_batch: usize,
    backend: Backend,
}

impl TextEncoder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
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
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| load_err(e.to_string()))?;

        let device = Device::Cpu;
        // SAFETY: the weights file is memory-mapped read-only and must not be modified while
        // the encoder lives; it is a model file nothing in this program writes.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
            .map_err(|e| load_err(e.to_string()))?;
        let model = minilm::MiniLm::load(vb, &cfg).map_err(|e| load_err(e.to_string()))?;
        Ok(Self {
            model,
            tokenizer,
            dim: cfg.hidden_size,
            max_batch: 64,
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
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.max_batch) {
            let inputs: Vec<&str> = chunk.iter().map(|&i| texts[i].as_ref()).collect();
            let rows = self.forward(&inputs)?;
            for (&i, row) in chunk.iter().zip(rows) {
                out[i] = row;
            }
        }
        Ok(out)
    }

    /// Embeds one text (a batch of one).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self.embed_batch(&[text])?.pop().unwrap_or_default())
    }

    fn forward(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
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
        let pooled = self.model.embed(&ids, &mask, texts.len(), seq)?;
        Ok(pooled.to_vec2::<f32>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_model_is_a_clear_error() {
        let err = TextEncoder::load(Path::new("/nonexistent/model"))
            .err()
            .unwrap();
        assert!(matches!(err, EmbedError::ModelMissing(_)));
        assert!(err.to_string().contains("scripts/fetch-model.sh"));
    }
}
