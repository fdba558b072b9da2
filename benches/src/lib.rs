//! Shared helpers of the benchmark binaries: a seeded RNG, percentile summaries and the
//! end-user tokens personalised requests through the edge need.

/// HS256 key of the benchmarks' end-user tokens: a benchmark-only value, never a
/// deployment's. The edge under test gets it, with [`BENCH_JWT_ISSUER`] and
/// [`BENCH_JWT_AUDIENCE`], from `benches/edge/serve-miniflare.mjs` and `benches/run.sh`.
pub const BENCH_JWT_SECRET: &str = "bench-only-hs256-secret-not-for-deployments";
pub const BENCH_JWT_ISSUER: &str = "semrec-bench";
pub const BENCH_JWT_AUDIENCE: &str = "semrec-bench";

/// `Authorization` header value for `user`: an HS256 token valid for a day.
pub fn bench_bearer(user: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 86_400;
    let token = test_support::jwt::hs256(
        BENCH_JWT_SECRET.as_bytes(),
        &serde_json::json!({
            "iss": BENCH_JWT_ISSUER, "aud": BENCH_JWT_AUDIENCE, "sub": user, "exp": exp,
        }),
    );
    format!("Bearer {token}")
}

/// xorshift64*: deterministic, dependency-free, good enough to pick requests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Standard normal sample (Box-Muller).
    pub fn gauss(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// The `p`-th percentile (0-100) of sorted samples, nearest-rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Clustered unit vectors shaped like sentence embeddings (topics plus noise).
pub fn clustered_vectors(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut centre_rng = Rng::new(42);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| centre_rng.gauss()).collect();
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.below(clusters);
        let start = out.len();
        out.extend((0..dim).map(|d| centres[c * dim + d] + 1.2 * rng.gauss()));
        let norm = out[start..].iter().map(|x| x * x).sum::<f32>().sqrt();
        out[start..].iter_mut().for_each(|x| *x /= norm);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 95.0), 7.0);
    }

    #[test]
    fn rng_is_deterministic() {
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        let v = clustered_vectors(10, 8, 2, 1);
        let norm: f32 = v[..8].iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
