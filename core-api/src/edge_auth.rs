//! Verification of edge-signed requests (see `shared_types::edge_auth` for the scheme).
//!
//! With a shared secret configured, the core accepts end-user API requests only when they
//! carry a valid signature — over the method, host, path, query, body digest and the user the
//! edge authenticated — made within the allowed clock skew, with a nonce not seen before in
//! that window. Operators bypass the edge with their own keys (see `auth.rs`).

use std::collections::HashMap;
use std::sync::Mutex;

use shared_types::edge_auth::SignedParts;

/// Nonces remembered at most; beyond this the oldest half is dropped. At the default
/// 30 s skew this covers more than 3,000 requests per second per node.
const MAX_REMEMBERED_NONCES: usize = 200_000;

/// Why a request was refused; the message goes back to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized(pub &'static str);

pub struct EdgeVerifier {
    secret: Vec<u8>,
    max_skew_secs: i64,
    /// nonce → the request timestamp, pruned once older than the skew window.
    seen: Mutex<HashMap<String, i64>>,
}

/// The request fields and edge headers a signature check needs.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Hex SHA-256 of the body as received.
    pub body_sha256: &'a str,
    /// The `x-edge-user` header, if any.
    pub user: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

impl EdgeVerifier {
    /// `None` when no secret is configured (verification off).
    pub fn new(secret: &str, max_skew_secs: u64) -> Option<Self> {
        (!secret.is_empty()).then(|| Self {
            secret: secret.as_bytes().to_vec(),
            max_skew_secs: i64::try_from(max_skew_secs).unwrap_or(i64::MAX),
            seen: Mutex::new(HashMap::new()),
        })
    }

    pub fn verify(&self, req: &SignedRequest<'_>, now_secs: i64) -> Result<(), Unauthorized> {
        let (Some(ts), Some(nonce), Some(signature)) = (req.timestamp, req.nonce, req.signature)
        else {
            return Err(Unauthorized("request is not signed by the edge"));
        };
        let timestamp: i64 = ts
            .parse()
            .map_err(|_| Unauthorized("malformed edge timestamp"))?;
        if nonce.is_empty() || nonce.len() > 64 {
            return Err(Unauthorized("malformed edge nonce"));
        }
        let parts = SignedParts {
            method: req.method,
            host: req.host,
            path: req.path,
            query: req.query,
            body_sha256: req.body_sha256,
            user: req.user.unwrap_or(""),
            timestamp,
            nonce,
        };
        if !parts.verify(&self.secret, signature) {
            return Err(Unauthorized("bad edge signature"));
        }
        if (now_secs - timestamp).abs() > self.max_skew_secs {
            return Err(Unauthorized(
                "edge timestamp outside the allowed clock skew",
            ));
        }
        let mut seen = self.seen.lock().expect("nonce lock");
        if seen.len() >= MAX_REMEMBERED_NONCES {
            let horizon = now_secs - self.max_skew_secs;
            seen.retain(|_, t| *t >= horizon);
            if seen.len() >= MAX_REMEMBERED_NONCES {
                // Flooded within one window: keep the newer half, still bounded.
                let mut times: Vec<i64> = seen.values().copied().collect();
                let (_, median, _) = times.select_nth_unstable(MAX_REMEMBERED_NONCES / 2);
                let median = *median;
                seen.retain(|_, t| *t > median);
            }
        }
        if seen.insert(nonce.to_string(), timestamp).is_some() {
            return Err(Unauthorized("replayed request (nonce already used)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(
        verifier: &EdgeVerifier,
        query: &str,
        ts: i64,
        nonce: &str,
        secret: &[u8],
        now: i64,
    ) -> Result<(), Unauthorized> {
        let sig = SignedParts {
            method: "GET",
            host: "core:8080",
            path: "/v1/recommendations",
            query,
            body_sha256: "",
            user: "",
            timestamp: ts,
            nonce,
        }
        .sign(secret);
        verifier.verify(
            &SignedRequest {
                method: "GET",
                host: "core:8080",
                path: "/v1/recommendations",
                query: "limit=5",
                body_sha256: "",
                user: None,
                timestamp: Some(&ts.to_string()),
                nonce: Some(nonce),
                signature: Some(&sig),
            },
            now,
        )
    }

    #[test]
    fn accepts_fresh_signed_requests_once() {
        let v = EdgeVerifier::new("s3cret", 30).unwrap();
        assert_eq!(signed(&v, "limit=5", 1_000, "a", b"s3cret", 1_010), Ok(()));
        assert_eq!(
            signed(&v, "limit=5", 1_000, "a", b"s3cret", 1_011),
            Err(Unauthorized("replayed request (nonce already used)"))
        );
        assert_eq!(signed(&v, "limit=5", 1_000, "b", b"s3cret", 1_011), Ok(()));
    }

    #[test]
    fn rejects_tampered_stale_and_foreign_requests() {
        let v = EdgeVerifier::new("s3cret", 30).unwrap();
        assert!(signed(&v, "limit=50", 1_000, "a", b"s3cret", 1_000).is_err());
        assert!(signed(&v, "limit=5", 1_000, "b", b"wrong", 1_000).is_err());
        assert!(signed(&v, "limit=5", 1_000, "c", b"s3cret", 1_031).is_err());
        assert!(signed(&v, "limit=5", 1_100, "d", b"s3cret", 1_000).is_err());
        assert!(EdgeVerifier::new("", 30).is_none());
    }
}
