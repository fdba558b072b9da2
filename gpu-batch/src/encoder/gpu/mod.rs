//! The encoder's GPU forward pass, written once against a small set of device primitives
//! ([`Ops`]): column-major strided-batched GEMMs with cuBLAS semantics plus five fused
//! element-wise kernels. On a GPU (feature `cuda`, `cuda_ops.rs`) they run as cuBLAS FP16
//! GEMMs (FP32 accumulation, tensor cores) and the CUDA C kernels of `encoder_kernels.cu`,
//! compiled with NVRTC. A host executor with the same semantics (`host_ops.rs`), rounding
//! every stored value to FP16, checks the orchestration (shapes, strides, transposes,
//! masking) against the candle CPU encoder on any machine, and the tests compile
//! `encoder_kernels.cu` for the host and run it thread by thread against that executor.
//!
//! Why this design: cudarc loads the CUDA libraries at run time and NVRTC compiles the
//! kernels at start, so the crate builds and tests without a CUDA install, and the only code
//! that can go wrong on a GPU alone is the thin mapping of each primitive to one call.

#[cfg(feature = "cuda")]
mod cuda_ops;
#[cfg(test)]
mod host_ops;

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::BertConfig;

#[cfg(feature = "cuda")]
pub(crate) use cuda_ops::GpuMiniLm;

/// CUDA C source of the encoder's element-wise kernels (compiled with NVRTC on the GPU, and
/// for the host in the tests).
pub(crate) const KERNEL_SOURCE: &str = include_str!("encoder_kernels.cu");

/// One GEMM in cuBLAS terms (column-major): for every `p < batch`,
/// `C_p = alpha · op(A_p) · op(B_p) + beta · C_p` with `op(A_p)` m × k, `op(B_p)` k × n and
/// `X_p` starting `p · stride_x` elements after the operand's offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Gemm {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lda: usize,
    pub ldb: usize,
    pub ldc: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
    pub batch: usize,
    pub alpha: f32,
}

impl Gemm {
    /// `y[rows × out] = x[rows × inp] · Wᵀ` for row-major `x`, `y` and a row-major `[out, inp]`
    /// weight, as PyTorch stores linear layers.
    fn linear(rows: usize, inp: usize, out: usize) -> Self {
        Self {
            trans_a: true,
            trans_b: false,
            m: out,
            n: rows,
            k: inp,
            lda: inp,
            ldb: inp,
            ldc: out,
            stride_a: 0,
            stride_b: 0,
            stride_c: 0,
            batch: 1,
            alpha: 1.0,
        }
    }
}

/// The primitives the forward pass needs. Buffers hold the device's element type (FP16 on
/// the GPU); shapes are row-major unless a GEMM says otherwise.
pub(crate) trait Ops {
    type Buf;
    type Ids;
    type Error;

    fn upload(&self, host: &[f32]) -> Result<Self::Buf, Self::Error>;
    fn upload_ids(&self, host: &[u32]) -> Result<Self::Ids, Self::Error>;
    fn zeros(&self, len: usize) -> Result<Self::Buf, Self::Error>;
    /// `(buffer, element offset)` operands; `c` is written (beta = 0).
    fn gemm(
        &self,
        g: &Gemm,
        a: (&Self::Buf, usize),
        b: (&Self::Buf, usize),
        c: (&mut Self::Buf, usize),
    ) -> Result<(), Self::Error>;
    /// `out[t] = LayerNorm(word[ids[t]] + position[t % seq] + token_type[0])`.
    fn embed_layernorm(
        &self,
        ids: &Self::Ids,
        w: &Weights<Self::Buf>,
        out: &mut Self::Buf,
        tokens: usize,
        seq: usize,
    ) -> Result<(), Self::Error>;
    /// `y[r, c] += bias[c]`, then GELU (erf form) when `gelu`.
    fn bias_activation(
        &self,
        y: &mut Self::Buf,
        bias: &Self::Buf,
        rows: usize,
        cols: usize,
        gelu: bool,
    ) -> Result<(), Self::Error>;
    /// `out = LayerNorm(y + bias + residual)` per row of `hidden`.
    #[allow(clippy::too_many_arguments)]
    fn bias_residual_layernorm(
        &self,
        y: &Self::Buf,
        bias: &Self::Buf,
        residual: &Self::Buf,
        norm: &Norm<Self::Buf>,
        out: &mut Self::Buf,
        rows: usize,
        hidden: usize,
        eps: f32,
    ) -> Result<(), Self::Error>;
    /// Softmax over the last axis of `scores[batch, heads, seq, seq]`, padding keys (mask 0)
    /// pushed down by 10⁴ as the reference does.
    fn masked_softmax(
        &self,
        scores: &mut Self::Buf,
        mask: &Self::Ids,
        batch: usize,
        heads: usize,
        seq: usize,
    ) -> Result<(), Self::Error>;
    /// Mean over the unmasked tokens, L2-normalised, as f32 on the host.
    fn mean_pool_normalize(
        &self,
        x: &Self::Buf,
        mask: &Self::Ids,
        batch: usize,
        seq: usize,
        hidden: usize,
    ) -> Result<Vec<f32>, Self::Error>;
}

/// LayerNorm scale and shift.
pub(crate) struct Norm<B> {
    pub gamma: B,
    pub beta: B,
}

pub(crate) struct LayerWeights<B> {
    /// Query, key and value projections stacked: `[3 · hidden, hidden]`, one GEMM for all.
    qkv: B,
    qkv_bias: B,
    attention_out: B,
    attention_out_bias: B,
    attention_norm: Norm<B>,
    intermediate: B,
    intermediate_bias: B,
    output: B,
    output_bias: B,
    output_norm: Norm<B>,
}

/// The model's weights on one device.
pub(crate) struct Weights<B> {
    pub word: B,
    pub position: B,
    pub token_type: B,
    pub embed_norm: Norm<B>,
    layers: Vec<LayerWeights<B>>,
    pub hidden: usize,
    heads: usize,
    intermediate: usize,
    pub eps: f32,
}

/// Weights read from `model.safetensors` as f32 on the host, ready to upload to any device.
pub(crate) type HostWeights = Weights<Vec<f32>>;

impl HostWeights {
    pub(crate) fn load(path: &Path, cfg: &BertConfig) -> candle_core::Result<Self> {
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)?;
        let mut take = |name: String| -> candle_core::Result<Vec<f32>> {
            let t: Tensor = tensors.remove(&name).ok_or_else(|| {
                candle_core::Error::Msg(format!("tensor {name} missing from {}", path.display()))
            })?;
            t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
        };
        let mut norm = |prefix: &str| -> candle_core::Result<Norm<Vec<f32>>> {
            Ok(Norm {
                gamma: take(format!("{prefix}.weight"))?,
                beta: take(format!("{prefix}.bias"))?,
            })
        };
        let embed_norm = norm("embeddings.LayerNorm")?;
        let attention_norms = (0..cfg.num_hidden_layers)
            .map(|i| norm(&format!("encoder.layer.{i}.attention.output.LayerNorm")))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let output_norms = (0..cfg.num_hidden_layers)
            .map(|i| norm(&format!("encoder.layer.{i}.output.LayerNorm")))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for (i, (attention_norm, output_norm)) in
            attention_norms.into_iter().zip(output_norms).enumerate()
        {
            let p = format!("encoder.layer.{i}");
            let mut qkv = Vec::new();
            let mut qkv_bias = Vec::new();
            for part in ["query", "key", "value"] {
                qkv.extend(take(format!("{p}.attention.self.{part}.weight"))?);
                qkv_bias.extend(take(format!("{p}.attention.self.{part}.bias"))?);
            }
            layers.push(LayerWeights {
                qkv,
                qkv_bias,
                attention_out: take(format!("{p}.attention.output.dense.weight"))?,
                attention_out_bias: take(format!("{p}.attention.output.dense.bias"))?,
                attention_norm,
                intermediate: take(format!("{p}.intermediate.dense.weight"))?,
                intermediate_bias: take(format!("{p}.intermediate.dense.bias"))?,
                output: take(format!("{p}.output.dense.weight"))?,
                output_bias: take(format!("{p}.output.dense.bias"))?,
                output_norm,
            });
        }
        let mut token_type = take("embeddings.token_type_embeddings.weight".into())?;
        token_type.truncate(cfg.hidden_size); // every input is segment 0
        Ok(Self {
            word: take("embeddings.word_embeddings.weight".into())?,
            position: take("embeddings.position_embeddings.weight".into())?,
            token_type,
            embed_norm,
            layers,
            hidden: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            intermediate: cfg.intermediate_size,
            eps: cfg.layer_norm_eps as f32,
        })
    }

    /// Copies every tensor to the device behind `ops`.
    pub(crate) fn upload<O: Ops>(&self, ops: &O) -> Result<Weights<O::Buf>, O::Error> {
        let norm = |n: &Norm<Vec<f32>>| -> Result<Norm<O::Buf>, O::Error> {
            Ok(Norm {
                gamma: ops.upload(&n.gamma)?,
                beta: ops.upload(&n.beta)?,
            })
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(LayerWeights {
                    qkv: ops.upload(&l.qkv)?,
                    qkv_bias: ops.upload(&l.qkv_bias)?,
                    attention_out: ops.upload(&l.attention_out)?,
                    attention_out_bias: ops.upload(&l.attention_out_bias)?,
                    attention_norm: norm(&l.attention_norm)?,
                    intermediate: ops.upload(&l.intermediate)?,
                    intermediate_bias: ops.upload(&l.intermediate_bias)?,
                    output: ops.upload(&l.output)?,
                    output_bias: ops.upload(&l.output_bias)?,
                    output_norm: norm(&l.output_norm)?,
                })
            })
            .collect::<Result<Vec<_>, O::Error>>()?;
        Ok(Weights {
            word: ops.upload(&self.word)?,
            position: ops.upload(&self.position)?,
            token_type: ops.upload(&self.token_type)?,
            embed_norm: norm(&self.embed_norm)?,
            layers,
            hidden: self.hidden,
            heads: self.heads,
            intermediate: self.intermediate,
            eps: self.eps,
        })
    }
}

/// Scratch buffers of one forward pass, sized for `batch × seq` tokens.
struct Activations<B> {
    x: B,
    qkv: B,
    scores: B,
    context: B,
    projected: B,
    attended: B,
    inner: B,
}

/// L2-normalised mean-pooled embeddings (`batch × hidden`, row-major) of `ids`/`mask`
/// (`batch × seq`, row-major; mask 1 for real tokens, 0 for padding).
pub(crate) fn forward<O: Ops>(
    ops: &O,
    w: &Weights<O::Buf>,
    ids: &[u32],
    mask: &[u32],
    batch: usize,
    seq: usize,
) -> Result<Vec<f32>, O::Error> {
    let (h, heads, inner) = (w.hidden, w.heads, w.intermediate);
    let head_dim = h / heads;
    let tokens = batch * seq;
    let ids = ops.upload_ids(ids)?;
    let mask = ops.upload_ids(mask)?;
    let mut a = Activations {
        x: ops.zeros(tokens * h)?,
        qkv: ops.zeros(tokens * 3 * h)?,
        scores: ops.zeros(batch * heads * seq * seq)?,
        context: ops.zeros(tokens * h)?,
        projected: ops.zeros(tokens * h)?,
        attended: ops.zeros(tokens * h)?,
        inner: ops.zeros(tokens * inner)?,
    };
    ops.embed_layernorm(&ids, w, &mut a.x, tokens, seq)?;
    // Per head and sequence: scores = Q·Kᵀ/√d (row-major seq × seq), computed column-major as
    // Sᵀ = K·Qᵀ straight out of the stacked QKV rows (stride 3h), batched over sequences.
    let scores = Gemm {
        trans_a: true,
        trans_b: false,
        m: seq,
        n: seq,
        k: head_dim,
        lda: 3 * h,
        ldb: 3 * h,
        ldc: seq,
        stride_a: seq * 3 * h,
        stride_b: seq * 3 * h,
        stride_c: heads * seq * seq,
        batch,
        alpha: 1.0 / (head_dim as f32).sqrt(),
    };
    // context = P·V (row-major seq × head_dim, written into its head's columns of the
    // seq × h context), column-major as Cᵀ = Vᵀ·Pᵀ.
    let context = Gemm {
        trans_a: false,
        trans_b: false,
        m: head_dim,
        n: seq,
        k: seq,
        lda: 3 * h,
        ldb: seq,
        ldc: h,
        stride_a: seq * 3 * h,
        stride_b: heads * seq * seq,
        stride_c: seq * h,
        batch,
        alpha: 1.0,
    };
    for l in &w.layers {
        ops.gemm(
            &Gemm::linear(tokens, h, 3 * h),
            (&l.qkv, 0),
            (&a.x, 0),
            (&mut a.qkv, 0),
        )?;
        ops.bias_activation(&mut a.qkv, &l.qkv_bias, tokens, 3 * h, false)?;
        for head in 0..heads {
            let (q, k) = (head * head_dim, h + head * head_dim);
            ops.gemm(
                &scores,
                (&a.qkv, k),
                (&a.qkv, q),
                (&mut a.scores, head * seq * seq),
            )?;
        }
        ops.masked_softmax(&mut a.scores, &mask, batch, heads, seq)?;
        for head in 0..heads {
            let v = 2 * h + head * head_dim;
            ops.gemm(
                &context,
                (&a.qkv, v),
                (&a.scores, head * seq * seq),
                (&mut a.context, head * head_dim),
            )?;
        }
        ops.gemm(
            &Gemm::linear(tokens, h, h),
            (&l.attention_out, 0),
            (&a.context, 0),
            (&mut a.projected, 0),
        )?;
        ops.bias_residual_layernorm(
            &a.projected,
            &l.attention_out_bias,
            &a.x,
            &l.attention_norm,
            &mut a.attended,
            tokens,
            h,
            w.eps,
        )?;
        ops.gemm(
            &Gemm::linear(tokens, h, inner),
            (&l.intermediate, 0),
            (&a.attended, 0),
            (&mut a.inner, 0),
        )?;
        ops.bias_activation(&mut a.inner, &l.intermediate_bias, tokens, inner, true)?;
        ops.gemm(
            &Gemm::linear(tokens, inner, h),
            (&l.output, 0),
            (&a.inner, 0),
            (&mut a.projected, 0),
        )?;
        ops.bias_residual_layernorm(
            &a.projected,
            &l.output_bias,
            &a.attended,
            &l.output_norm,
            &mut a.x,
            tokens,
            h,
            w.eps,
        )?;
    }
    ops.mean_pool_normalize(&a.x, &mask, batch, seq, h)
}

/// `f(worker, item)` for every item, item `i` on worker `i mod workers` with all workers
/// running at once (one thread each); results in item order, the first error wins.
/// `workers` must not be empty when there are items.
pub(crate) fn data_parallel<W, T, R, E>(
    workers: &[W],
    items: &[T],
    f: impl Fn(&W, &T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E>
where
    W: Sync,
    T: Sync,
    R: Send,
    E: Send,
{
    let n = workers.len().max(1);
    let f = &f;
    let per_worker: Vec<Vec<(usize, R)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .iter()
            .enumerate()
            .map(|(w, worker)| {
                scope.spawn(move || {
                    items
                        .iter()
                        .enumerate()
                        .skip(w)
                        .step_by(n)
                        .map(|(i, item)| f(worker, item).map(|r| (i, r)))
                        .collect::<Result<Vec<_>, E>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread panicked"))
            .collect::<Result<_, _>>()
    })?;
    let mut slots: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for (i, r) in per_worker.into_iter().flatten() {
        slots[i] = Some(r);
    }
    Ok(slots
        .into_iter()
        .map(|r| r.expect("every item has a worker"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::host_ops::HostOps;
    use super::*;
    use crate::encoder::{test_model_dir, DeviceChoice, TextEncoder};

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (norm(a) * norm(b))
    }

    #[test]
    fn data_parallel_keeps_item_order_and_deals_items_round_robin() {
        let workers = [0usize, 1, 2];
        let items: Vec<usize> = (0..10).collect();
        let out = data_parallel(&workers, &items, |w, i| Ok::<_, ()>((*w, *i))).unwrap();
        assert_eq!(out.len(), 10);
        for (i, (w, item)) in out.into_iter().enumerate() {
            assert_eq!((item, w), (i, i % 3));
        }
        let failed = data_parallel(
            &workers,
            &items,
            |_, i| if *i == 7 { Err(*i) } else { Ok(*i) },
        );
        assert_eq!(failed, Err(7));
        let none: Vec<usize> =
            data_parallel(&workers, &[] as &[usize], |_, i| Ok::<_, ()>(*i)).unwrap();
        assert!(none.is_empty());
    }

    /// The GPU's op sequence, executed on the host with FP32 and with FP16 storage, against
    /// the candle encoder: the orchestration must be exact and FP16 within cosine 0.999.
    #[test]
    fn forward_pass_on_device_primitives_matches_the_cpu_encoder() {
        let dir = test_model_dir();
        let encoder = TextEncoder::load_on(&dir, DeviceChoice::Cpu)
            .expect("model present (run scripts/fetch-model.sh)");
        let cfg: BertConfig =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let weights = HostWeights::load(&dir.join("model.safetensors"), &cfg).unwrap();
        let texts = [
            "A heist thriller set in Paris",
            "Space opera with a lonely robot and a long, winding journey home through the stars",
            "romcom",
        ];
        let expected = encoder.embed_batch(&texts).unwrap();
        let tokens = encoder.tokenize(&texts).unwrap();
        assert!(
            tokens.mask.contains(&0),
            "the batch must contain padding to test masking"
        );
        for (half_storage, floor) in [(false, 0.99999), (true, 0.999)] {
            let ops = HostOps { half_storage };
            let w = weights.upload(&ops).unwrap();
            let pooled = forward(
                &ops,
                &w,
                &tokens.ids,
                &tokens.mask,
                tokens.batch,
                tokens.seq,
            )
            .unwrap();
            for (row, want) in pooled.chunks_exact(cfg.hidden_size).zip(&expected) {
                let c = cosine(row, want);
                assert!(
                    c >= floor,
                    "half_storage={half_storage}: cosine {c} < {floor}"
                );
            }
        }
    }
}
