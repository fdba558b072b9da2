//! A host executor of [`Ops`] with the GPU's semantics: column-major strided-batched GEMMs
//! as cuBLAS computes them, the fused kernels as `encoder_kernels.cu` writes them, and (with
//! `half_storage`) every stored value rounded to FP16 as the GPU's buffers hold it, with
//! f32 arithmetic in between. Slow and simple on purpose: it is the reference the forward
//! pass is checked with.

use std::convert::Infallible;

use half::f16;

use super::{Gemm, Norm, Ops, Weights};

pub(crate) struct HostOps {
    pub half_storage: bool,
}

impl HostOps {
    fn store(&self, x: f32) -> f32 {
        if self.half_storage {
            f16::from_f32(x).to_f32()
        } else {
            x
        }
    }
}

fn layernorm_row(values: &[f32], norm: &Norm<Vec<f32>>, eps: f32, out: &mut [f32]) {
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for (i, o) in out.iter_mut().enumerate() {
        *o = (values[i] - mean) * inv * norm.gamma[i] + norm.beta[i];
    }
}

/// erf by its Taylor series for |x| < 3 (exact to ~1e-13 in f64) and the asymptotic
/// expansion of erfc beyond; the reference needs far less than f32 precision.
fn erf(x: f32) -> f32 {
    let x = f64::from(x);
    let value = if x.abs() < 3.0 {
        let (mut term, mut sum, x2) = (x, x, x * x);
        for n in 1..100 {
            term *= -x2 / f64::from(n);
            sum += term / f64::from(2 * n + 1);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let z = x.abs();
        let erfc = (-z * z).exp() / (z * std::f64::consts::PI.sqrt()) * (1.0 - 0.5 / (z * z));
        x.signum() * (1.0 - erfc)
    };
    value as f32
}

impl Ops for HostOps {
    type Buf = Vec<f32>;
    type Ids = Vec<u32>;
    type Error = Infallible;

    fn upload(&self, host: &[f32]) -> Result<Vec<f32>, Infallible> {
        Ok(host.iter().map(|&x| self.store(x)).collect())
    }

    fn upload_ids(&self, host: &[u32]) -> Result<Vec<u32>, Infallible> {
        Ok(host.to_vec())
    }

    fn zeros(&self, len: usize) -> Result<Vec<f32>, Infallible> {
        Ok(vec![0.0; len])
    }

    fn gemm(
        &self,
        g: &Gemm,
        (a, a0): (&Vec<f32>, usize),
        (b, b0): (&Vec<f32>, usize),
        (c, c0): (&mut Vec<f32>, usize),
    ) -> Result<(), Infallible> {
        for p in 0..g.batch {
            let (a0, b0, c0) = (
                a0 + p * g.stride_a,
                b0 + p * g.stride_b,
                c0 + p * g.stride_c,
            );
            for col in 0..g.n {
                for row in 0..g.m {
                    let mut sum = 0f32;
                    for k in 0..g.k {
                        let x = if g.trans_a {
                            a[a0 + k + row * g.lda]
                        } else {
                            a[a0 + row + k * g.lda]
                        };
                        let y = if g.trans_b {
                            b[b0 + col + k * g.ldb]
                        } else {
                            b[b0 + k + col * g.ldb]
                        };
                        sum += x * y;
                    }
                    c[c0 + row + col * g.ldc] = self.store(g.alpha * sum);
                }
            }
        }
        Ok(())
    }

    fn embed_layernorm(
        &self,
        ids: &Vec<u32>,
        w: &Weights<Vec<f32>>,
        out: &mut Vec<f32>,
        tokens: usize,
        seq: usize,
    ) -> Result<(), Infallible> {
        let h = w.hidden;
        let mut row = vec![0f32; h];
        for t in 0..tokens {
            let word = &w.word[ids[t] as usize * h..][..h];
            let position = &w.position[(t % seq) * h..][..h];
            for i in 0..h {
                row[i] = word[i] + position[i] + w.token_type[i];
            }
            layernorm_row(&row, &w.embed_norm, w.eps, &mut out[t * h..(t + 1) * h]);
            for o in &mut out[t * h..(t + 1) * h] {
                *o = self.store(*o);
            }
        }
        Ok(())
    }

    fn bias_activation(
        &self,
        y: &mut Vec<f32>,
        bias: &Vec<f32>,
        rows: usize,
        cols: usize,
        gelu: bool,
    ) -> Result<(), Infallible> {
        for (i, v) in y[..rows * cols].iter_mut().enumerate() {
            let x = *v + bias[i % cols];
            let x = if gelu {
                0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
            } else {
                x
            };
            *v = self.store(x);
        }
        Ok(())
    }

    fn bias_residual_layernorm(
        &self,
        y: &Vec<f32>,
        bias: &Vec<f32>,
        residual: &Vec<f32>,
        norm: &Norm<Vec<f32>>,
        out: &mut Vec<f32>,
        rows: usize,
        hidden: usize,
        eps: f32,
    ) -> Result<(), Infallible> {
        let mut row = vec![0f32; hidden];
        for r in 0..rows {
            for i in 0..hidden {
                row[i] = y[r * hidden + i] + bias[i] + residual[r * hidden + i];
            }
            let o = &mut out[r * hidden..(r + 1) * hidden];
            layernorm_row(&row, norm, eps, o);
            for v in o {
                *v = self.store(*v);
            }
        }
        Ok(())
    }

    fn masked_softmax(
        &self,
        scores: &mut Vec<f32>,
        mask: &Vec<u32>,
        batch: usize,
        heads: usize,
        seq: usize,
    ) -> Result<(), Infallible> {
        for r in 0..batch * heads * seq {
            let b = r / (heads * seq);
            let row = &mut scores[r * seq..(r + 1) * seq];
            let keys = &mask[b * seq..(b + 1) * seq];
            let logits: Vec<f32> = row
                .iter()
                .zip(keys)
                .map(|(&s, &m)| if m == 0 { s - 1e4 } else { s })
                .collect();
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
            for (o, l) in row.iter_mut().zip(&logits) {
                *o = self.store((l - max).exp() / sum);
            }
        }
        Ok(())
    }

    fn mean_pool_normalize(
        &self,
        x: &Vec<f32>,
        mask: &Vec<u32>,
        batch: usize,
        seq: usize,
        hidden: usize,
    ) -> Result<Vec<f32>, Infallible> {
        let mut out = vec![0f32; batch * hidden];
        for b in 0..batch {
            let o = &mut out[b * hidden..(b + 1) * hidden];
            let count = mask[b * seq..(b + 1) * seq]
                .iter()
                .filter(|&&m| m != 0)
                .count();
            for j in 0..seq {
                if mask[b * seq + j] != 0 {
                    for (i, v) in o.iter_mut().enumerate() {
                        *v += x[(b * seq + j) * hidden + i];
                    }
                }
            }
            let count = count.max(1) as f32;
            let norm = o
                .iter()
                .map(|v| (v / count).powi(2))
                .sum::<f32>()
                .sqrt()
                .max(1e-12);
            for v in o.iter_mut() {
                *v = *v / count / norm;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use half::f16;

    use super::super::{Norm, Ops, Weights};
    use super::HostOps;

    /// Deterministic values in [-scale, scale], FP16-representable.
    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
                f16::from_f32((unit * 2.0 - 1.0) * scale).to_f32()
            })
            .collect()
    }

    fn halves(v: &[f32]) -> Vec<u8> {
        v.iter()
            .flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes())
            .collect()
    }

    fn words(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// Builds encoder_kernels_host.cpp (encoder_kernels.cu compiled for the host) in `work`.
    /// The sources are compiled into the test so it runs from any directory (e.g. on a GPU
    /// machine).
    fn driver(work: &Path) -> PathBuf {
        std::fs::write(work.join("encoder_kernels.cu"), super::super::KERNEL_SOURCE).unwrap();
        let src = work.join("encoder_kernels_host.cpp");
        std::fs::write(&src, include_str!("encoder_kernels_host.cpp")).unwrap();
        let exe = work.join("encoder_kernels_host");
        let status = Command::new("c++")
            .args(["-std=c++17", "-O1", "-o"])
            .arg(&exe)
            .arg(&src)
            .status()
            .expect("a C++ compiler (c++) to build the host kernel driver");
        assert!(
            status.success(),
            "encoder_kernels_host.cpp failed to compile"
        );
        exe
    }

    struct Run<'a> {
        exe: &'a Path,
        dir: PathBuf,
    }

    impl Run<'_> {
        /// Runs `kernel` with pointer arguments `args` (raw bytes) and scalars; returns the
        /// bytes of pointer argument `out` afterwards.
        fn call(&self, kernel: &str, args: &[Vec<u8>], scalars: &[String], out: usize) -> Vec<u8> {
            std::fs::create_dir_all(&self.dir).unwrap();
            for (i, a) in args.iter().enumerate() {
                std::fs::write(self.dir.join(format!("arg{i}.bin")), a).unwrap();
            }
            let status = Command::new(self.exe)
                .arg(kernel)
                .arg(&self.dir)
                .args(scalars)
                .status()
                .unwrap();
            assert!(status.success(), "{kernel} failed on the host");
            std::fs::read(self.dir.join(format!("arg{out}.out"))).unwrap()
        }
    }

    fn from_halves(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(2)
            .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect()
    }

    fn assert_close(kernel: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{kernel}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            // Summation order differs: allow a couple of FP16 ulps.
            assert!(
                (g - w).abs() <= 4e-3 * w.abs().max(1.0),
                "{kernel}[{i}]: kernel {g} vs reference {w}"
            );
        }
    }

    /// Every CUDA kernel, compiled for the host and run thread by thread over its launch
    /// grid, computes what the host reference computes (which the forward-pass test ties to
    /// the CPU encoder). Catches indexing, masking and formula mistakes in encoder_kernels.cu.
    #[test]
    fn cuda_kernels_run_on_the_host_match_the_reference_ops() {
        let work =
            std::env::temp_dir().join(format!("gpu-batch-encoder-kernels-{}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        let exe = driver(&work);
        let run = Run {
            exe: &exe,
            dir: work.join("args"),
        };
        let ops = HostOps { half_storage: true };
        let s = |x: &dyn ToString| x.to_string();
        let (batch, seq, hidden, heads, vocab) = (3usize, 5usize, 24usize, 4usize, 11usize);
        let tokens = batch * seq;
        let mask: Vec<u32> = (0..tokens)
            .map(|t| u32::from(t % seq < [5, 3, 1][t / seq]))
            .collect();

        // embed_layernorm
        let ids: Vec<u32> = (0..tokens).map(|t| (t * 7 % vocab) as u32).collect();
        let w = Weights {
            word: values(vocab * hidden, 1, 1.0),
            position: values(seq * hidden, 2, 0.5),
            token_type: values(hidden, 3, 0.2),
            embed_norm: Norm {
                gamma: values(hidden, 4, 1.5),
                beta: values(hidden, 5, 0.3),
            },
            layers: Vec::new(),
            hidden,
            heads,
            intermediate: 0,
            eps: 1e-12,
        };
        let mut want = vec![0.0; tokens * hidden];
        ops.embed_layernorm(&ids, &w, &mut want, tokens, seq)
            .unwrap();
        let got = run.call(
            "embed_layernorm",
            &[
                words(&ids),
                halves(&w.word),
                halves(&w.position),
                halves(&w.token_type),
                halves(&w.embed_norm.gamma),
                halves(&w.embed_norm.beta),
                halves(&vec![0.0; tokens * hidden]),
            ],
            &[s(&tokens), s(&seq), s(&hidden), s(&w.eps)],
            6,
        );
        assert_close("embed_layernorm", &from_halves(&got), &want);

        // bias_activation, plain and GELU
        for gelu in [false, true] {
            let y = values(tokens * hidden, 6, 4.0);
            let bias = values(hidden, 7, 1.0);
            let mut want = y.clone();
            ops.bias_activation(&mut want, &bias, tokens, hidden, gelu)
                .unwrap();
            let got = run.call(
                "bias_activation",
                &[halves(&y), halves(&bias)],
                &[s(&tokens), s(&hidden), s(&u8::from(gelu))],
                0,
            );
            assert_close("bias_activation", &from_halves(&got), &want);
        }

        // bias_residual_layernorm
        let (y, bias, residual) = (
            values(tokens * hidden, 8, 2.0),
            values(hidden, 9, 0.5),
            values(tokens * hidden, 10, 2.0),
        );
        let norm = Norm {
            gamma: values(hidden, 11, 1.0),
            beta: values(hidden, 12, 0.5),
        };
        let mut want = vec![0.0; tokens * hidden];
        ops.bias_residual_layernorm(
            &y, &bias, &residual, &norm, &mut want, tokens, hidden, 1e-12,
        )
        .unwrap();
        let got = run.call(
            "bias_residual_layernorm",
            &[
                halves(&y),
                halves(&bias),
                halves(&residual),
                halves(&norm.gamma),
                halves(&norm.beta),
                halves(&vec![0.0; tokens * hidden]),
            ],
            &[s(&tokens), s(&hidden), s(&1e-12f32)],
            5,
        );
        assert_close("bias_residual_layernorm", &from_halves(&got), &want);

        // masked_softmax
        let scores = values(batch * heads * seq * seq, 13, 6.0);
        let mut want = scores.clone();
        ops.masked_softmax(&mut want, &mask, batch, heads, seq)
            .unwrap();
        let got = run.call(
            "masked_softmax",
            &[halves(&scores), words(&mask)],
            &[s(&batch), s(&heads), s(&seq)],
            0,
        );
        assert_close("masked_softmax", &from_halves(&got), &want);

        // mean_pool_normalize
        let x = values(tokens * hidden, 14, 3.0);
        let want = ops
            .mean_pool_normalize(&x, &mask, batch, seq, hidden)
            .unwrap();
        let got = run.call(
            "mean_pool_normalize",
            &[halves(&x), words(&mask), vec![0u8; batch * hidden * 4]],
            &[s(&batch), s(&seq), s(&hidden)],
            2,
        );
        let got: Vec<f32> = got
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_close("mean_pool_normalize", &got, &want);
        std::fs::remove_dir_all(&work).ok();
    }
}
