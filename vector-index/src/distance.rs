//! Inner-product kernels: an f32 query against stored f16 vectors (the index and FP16
//! scoring), f32 × f32, and i8 × i8 for INT8 scoring.
//!
//! Vectors are stored as FP16 (half the memory and memory bandwidth of f32) and widened in
//! registers: on x86-64 with AVX2+F16C+FMA that is one `vcvtph2ps` per 8 lanes, which is far
//! cheaper than the cache misses the smaller footprint saves. Other CPUs use a portable loop.

use half::f16;

/// Dot product of an f32 query with an f16 vector of the same length.
pub type DotFn = fn(&[f32], &[f16]) -> f32;

/// Picks the fastest kernel this CPU supports (checked once, at index load).
pub fn best_dot() -> DotFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            return dot_avx2;
        }
    }
    dot_portable
}

/// Portable kernel: four independent accumulators so the compiler can vectorise.
pub fn dot_portable(q: &[f32], v: &[f16]) -> f32 {
    debug_assert_eq!(q.len(), v.len());
    let mut acc = [0f32; 8];
    let (qc, qr) = q.split_at(q.len() / 8 * 8);
    let (vc, vr) = v.split_at(qc.len());
    for (qs, vs) in qc.chunks_exact(8).zip(vc.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += qs[i] * vs[i].to_f32();
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (a, b) in qr.iter().zip(vr) {
        sum += a * b.to_f32();
    }
    sum
}

#[cfg(target_arch = "x86_64")]
fn dot_avx2(q: &[f32], v: &[f16]) -> f32 {
    // SAFETY: only returned by `best_dot` after the CPU features were detected.
    unsafe { dot_avx2_impl(q, v) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2_impl(q: &[f32], v: &[f16]) -> f32 {
    use std::arch::x86_64::*;
    let n = q.len().min(v.len());
    let qp = q.as_ptr();
    let vp = v.as_ptr() as *const u16;
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    // SAFETY: every load reads lanes i..i+16 (or i..i+8) with i + 16 <= n (i + 8 <= n),
    // inside both slices; unaligned loads are used throughout.
    unsafe {
        while i + 16 <= n {
            let h0 = _mm_loadu_si128(vp.add(i) as *const __m128i);
            let h1 = _mm_loadu_si128(vp.add(i + 8) as *const __m128i);
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(i)), _mm256_cvtph_ps(h0), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(i + 8)), _mm256_cvtph_ps(h1), acc1);
            i += 16;
        }
        if i + 8 <= n {
            let h0 = _mm_loadu_si128(vp.add(i) as *const __m128i);
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(i)), _mm256_cvtph_ps(h0), acc0);
            i += 8;
        }
        let acc = _mm256_add_ps(acc0, acc1);
        let hi = _mm256_extractf128_ps(acc, 1);
        let lo = _mm256_castps256_ps128(acc);
        let s = _mm_add_ps(hi, lo);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        let mut sum = _mm_cvtss_f32(s);
        while i < n {
            sum += *qp.add(i) * f16::from_bits(*vp.add(i)).to_f32();
            i += 1;
        }
        sum
    }
}

/// Hints the CPU to start loading a vector that the search will read soon.
#[inline(always)]
pub fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, even on an invalid address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(ptr as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Plain f32 dot product, used when building and for exact search.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + ar.iter().zip(br).map(|(x, y)| x * y).sum::<f32>()
}

/// Dot product of two f32 vectors.
pub type DotF32Fn = fn(&[f32], &[f32]) -> f32;

/// Picks the fastest f32 kernel this CPU supports.
pub fn best_dot_f32() -> DotF32Fn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return dot_f32_avx2;
        }
    }
    dot_f32
}

#[cfg(target_arch = "x86_64")]
fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: only returned by `best_dot_f32` after AVX2 and FMA were detected.
    unsafe { dot_f32_avx2_impl(a, b) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_avx2_impl(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    // SAFETY: every load reads lanes i..i+16 (or i..i+8) with the end <= n, inside both slices.
    unsafe {
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(ap.add(i)), _mm256_loadu_ps(bp.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(ap.add(i + 8)),
                _mm256_loadu_ps(bp.add(i + 8)),
                acc1,
            );
            i += 16;
        }
        if i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(ap.add(i)), _mm256_loadu_ps(bp.add(i)), acc0);
            i += 8;
        }
    }
    let acc = _mm256_add_ps(acc0, acc1);
    let s = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s) + dot_f32(&a[i..n], &b[i..n])
}

/// Inner product of two INT8 vectors, exact in i32 (|sum| <= 127² · 2 per lane pair).
pub type DotI8Fn = fn(&[i8], &[i8]) -> i32;

/// Picks the fastest INT8 kernel this CPU supports.
pub fn best_dot_i8() -> DotI8Fn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            return dot_i8_avx2;
        }
    }
    dot_i8_portable
}

pub fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

#[cfg(target_arch = "x86_64")]
fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    // SAFETY: only returned by `best_dot_i8` after AVX2 was detected.
    unsafe { dot_i8_avx2_impl(a, b) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2_impl(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    // SAFETY: each load reads bytes i..i+16 with i + 16 <= n, inside both slices.
    unsafe {
        while i + 16 <= n {
            let va = _mm256_cvtepi8_epi16(_mm_loadu_si128(a.as_ptr().add(i) as *const __m128i));
            let vb = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.as_ptr().add(i) as *const __m128i));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(va, vb));
            i += 16;
        }
    }
    let lo = _mm256_castsi256_si128(acc);
    let hi = _mm256_extracti128_si256(acc, 1);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s) + dot_i8_portable(&a[i..n], &b[i..n])
}

/// Symmetric INT8 quantisation of one vector: (codes, scale).
pub fn quantize_i8(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let codes = v
        .iter()
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (codes, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_with_reference() {
        for n in [1usize, 7, 8, 15, 16, 17, 100, 384] {
            let q: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect();
            let v: Vec<f16> = (0..n)
                .map(|i| f16::from_f32(((i * 13 % 9) as f32 - 4.0) / 3.0))
                .collect();
            let reference: f32 = q.iter().zip(&v).map(|(a, b)| a * b.to_f32()).sum();
            let tol = 1e-4 * (n as f32);
            assert!(
                (dot_portable(&q, &v) - reference).abs() < tol,
                "portable n={n}"
            );
            assert!((best_dot()(&q, &v) - reference).abs() < tol, "best n={n}");
            let vf: Vec<f32> = v.iter().map(|x| x.to_f32()).collect();
            assert!((dot_f32(&q, &vf) - reference).abs() < tol, "f32 n={n}");
            assert!(
                (best_dot_f32()(&q, &vf) - reference).abs() < tol,
                "best f32 n={n}"
            );
        }
    }

    #[test]
    fn int8_kernels_are_exact() {
        for n in [1usize, 15, 16, 17, 33, 384] {
            let a: Vec<i8> = (0..n)
                .map(|i| ((i * 37 % 255) as i32 - 127) as i8)
                .collect();
            let b: Vec<i8> = (0..n)
                .map(|i| ((i * 91 % 255) as i32 - 127) as i8)
                .collect();
            let reference: i32 = a.iter().zip(&b).map(|(&x, &y)| x as i32 * y as i32).sum();
            assert_eq!(dot_i8_portable(&a, &b), reference, "portable n={n}");
            assert_eq!(best_dot_i8()(&a, &b), reference, "best n={n}");
        }
        let extreme = vec![-127i8; 384];
        assert_eq!(best_dot_i8()(&extreme, &extreme), 127 * 127 * 384);
    }

    #[test]
    fn quantisation_round_trips_within_half_a_step() {
        let v = [0.5f32, -1.0, 0.25, 0.0, 0.999];
        let (codes, scale) = quantize_i8(&v);
        assert_eq!(codes[1], -127);
        for (x, c) in v.iter().zip(&codes) {
            assert!((x - f32::from(*c) * scale).abs() <= scale / 2.0 + 1e-7);
        }
        let (zeros, s) = quantize_i8(&[0.0; 4]);
        assert_eq!((zeros, s), (vec![0; 4], 1.0));
    }
}
