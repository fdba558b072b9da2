//! How a frozen graph stores its vectors. The served index uses FP16 (half the memory of f32
//! at a negligible recall cost); FP32 and INT8 exist so the trade-off can be measured on the
//! same graph (`benches/ann`) and chosen per deployment.

use crate::distance::{best_dot, best_dot_f32, best_dot_i8, quantize_i8, DotF32Fn, DotFn, DotI8Fn};
use half::{f16, slice::HalfFloatSliceExt};

/// A vector storage precision: the element type of a stored row, how rows are encoded and
/// decoded, and the similarity kernel between a prepared query and a stored row.
pub trait Storage: Send + Sync + 'static {
    type Elem: bytemuck::Pod + Default + Send + Sync;
    /// The query in the form the kernel takes (INT8 quantises it once per search).
    type Query;
    /// The kernel picked for this CPU, once per graph.
    type Kernel: Copy + Send + Sync;
    /// Short name for reports ("FP16").
    const NAME: &'static str;

    fn kernel() -> Self::Kernel;
    /// Elements per stored row of `dim` values.
    fn row_len(dim: usize) -> usize {
        dim
    }
    fn encode(row: &[f32], out: &mut [Self::Elem]);
    fn decode(row: &[Self::Elem], out: &mut [f32]);
    fn prepare(query: &[f32]) -> Self::Query;
    /// Inner product of the query with a stored row.
    fn similarity(kernel: Self::Kernel, query: &Self::Query, row: &[Self::Elem]) -> f32;
}

/// Full precision: 4 bytes per value.
#[derive(Debug, Clone, Copy)]
pub struct Fp32;

/// Half precision: 2 bytes per value, widened in registers (the default).
#[derive(Debug, Clone, Copy)]
pub struct Fp16;

/// Symmetric INT8 per row: 1 byte per value plus the row's f32 scale (its last 4 bytes).
/// The query is quantised the same way and rows are compared in exact integer arithmetic.
#[derive(Debug, Clone, Copy)]
pub struct Int8;

impl Storage for Fp32 {
    type Elem = f32;
    type Query = Vec<f32>;
    type Kernel = DotF32Fn;
    const NAME: &'static str = "FP32";

    fn kernel() -> DotF32Fn {
        best_dot_f32()
    }
    fn encode(row: &[f32], out: &mut [f32]) {
        out.copy_from_slice(row);
    }
    fn decode(row: &[f32], out: &mut [f32]) {
        out.copy_from_slice(row);
    }
    fn prepare(query: &[f32]) -> Vec<f32> {
        query.to_vec()
    }
    #[inline]
    fn similarity(kernel: DotF32Fn, query: &Vec<f32>, row: &[f32]) -> f32 {
        kernel(query, row)
    }
}

impl Storage for Fp16 {
    type Elem = f16;
    type Query = Vec<f32>;
    type Kernel = DotFn;
    const NAME: &'static str = "FP16";

    fn kernel() -> DotFn {
        best_dot()
    }
    fn encode(row: &[f32], out: &mut [f16]) {
        // Whole-slice conversion: vectorised (F16C) where the CPU has it.
        out.convert_from_f32_slice(row);
    }
    fn decode(row: &[f16], out: &mut [f32]) {
        row.convert_to_f32_slice(out);
    }
    fn prepare(query: &[f32]) -> Vec<f32> {
        query.to_vec()
    }
    #[inline]
    fn similarity(kernel: DotFn, query: &Vec<f32>, row: &[f16]) -> f32 {
        kernel(query, row)
    }
}

const SCALE_BYTES: usize = 4;

fn split_int8(row: &[i8]) -> (&[i8], f32) {
    let (codes, scale) = row.split_at(row.len() - SCALE_BYTES);
    let scale: [u8; 4] = std::array::from_fn(|i| scale[i] as u8);
    (codes, f32::from_le_bytes(scale))
}

impl Storage for Int8 {
    type Elem = i8;
    /// Codes and scale.
    type Query = (Vec<i8>, f32);
    type Kernel = DotI8Fn;
    const NAME: &'static str = "INT8";

    fn kernel() -> DotI8Fn {
        best_dot_i8()
    }
    fn row_len(dim: usize) -> usize {
        dim + SCALE_BYTES
    }
    fn encode(row: &[f32], out: &mut [i8]) {
        let (codes, scale) = quantize_i8(row);
        out[..codes.len()].copy_from_slice(&codes);
        for (o, b) in out[codes.len()..].iter_mut().zip(scale.to_le_bytes()) {
            *o = b as i8;
        }
    }
    fn decode(row: &[i8], out: &mut [f32]) {
        let (codes, scale) = split_int8(row);
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = f32::from(c) * scale;
        }
    }
    fn prepare(query: &[f32]) -> (Vec<i8>, f32) {
        quantize_i8(query)
    }
    #[inline]
    fn similarity(kernel: DotI8Fn, query: &(Vec<i8>, f32), row: &[i8]) -> f32 {
        let (codes, scale) = split_int8(row);
        kernel(&query.0, codes) as f32 * query.1 * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<S: Storage>(v: &[f32]) -> Vec<f32> {
        let mut row = vec![S::Elem::default(); S::row_len(v.len())];
        S::encode(v, &mut row);
        let mut back = vec![0.0; v.len()];
        S::decode(&row, &mut back);
        let sim = S::similarity(S::kernel(), &S::prepare(v), &row);
        let exact: f32 = v.iter().map(|x| x * x).sum();
        assert!((sim - exact).abs() < 0.02, "{}: {sim} vs {exact}", S::NAME);
        back
    }

    #[test]
    fn every_precision_round_trips_within_its_resolution() {
        let v: Vec<f32> = (0..37)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 13.0)
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let v: Vec<f32> = v.iter().map(|x| x / norm).collect();
        for (back, tolerance) in [
            (round_trip::<Fp32>(&v), 0.0),
            (round_trip::<Fp16>(&v), 1e-3),
            (round_trip::<Int8>(&v), 0.5 / 127.0 * 1.01),
        ] {
            let worst = v
                .iter()
                .zip(&back)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= tolerance, "error {worst} > {tolerance}");
        }
    }
}
