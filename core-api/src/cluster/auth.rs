//! Authentication of the internal RPC: with `cluster.secret` set, every call between routers
//! and shard nodes carries an HMAC-SHA256 over its method, path and query, time and body
//! digest, and a shard node refuses calls without a valid one. The secret never travels; a
//! captured call is only valid within the clock-skew window, and replaying it then is
//! harmless: reads are reads, and a replayed item write carries versions the node already
//! holds.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Header with the signing time (unix seconds).
pub const TIME_HEADER: &str = "x-cluster-time";
/// Header with the hex HMAC.
pub const SIGNATURE_HEADER: &str = "x-cluster-signature";
/// Largest accepted difference between the caller's signing time and the node's clock.
pub const MAX_SKEW_SECS: i64 = 30;

/// Signs and verifies internal calls with the cluster secret (`None`: no authentication, for
/// loopback clusters only; the configuration refuses it elsewhere).
#[derive(Clone, Default)]
pub struct ClusterAuth {
    secret: Option<Vec<u8>>,
}

/// Why a call was refused (said in the 401's message; no secret material).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("missing {SIGNATURE_HEADER} or {TIME_HEADER}")]
    Missing,
    #[error("signing time outside the allowed clock skew")]
    Stale,
    #[error("bad signature")]
    BadSignature,
}

impl ClusterAuth {
    pub fn new(secret: &str) -> Self {
        Self {
            secret: (!secret.is_empty()).then(|| secret.as_bytes().to_vec()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }

    fn mac(
        secret: &[u8],
        method: &str,
        path_and_query: &str,
        time: i64,
        body: &[u8],
    ) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        let digest = Sha256::digest(body);
        // Length-prefixed fields: no two different calls share a payload.
        for field in [
            method.as_bytes(),
            path_and_query.as_bytes(),
            time.to_string().as_bytes(),
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac.update(&digest);
        mac
    }

    /// The headers to add to a call made at `time`; none without a secret.
    pub fn sign(
        &self,
        method: &str,
        path_and_query: &str,
        time: i64,
        body: &[u8],
    ) -> Option<[(&'static str, String); 2]> {
        let secret = self.secret.as_deref()?;
        let tag = Self::mac(secret, method, path_and_query, time, body).finalize();
        let hex: String = tag
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Some([(TIME_HEADER, time.to_string()), (SIGNATURE_HEADER, hex)])
    }

    /// Checks a received call at the node's time `now`; always passes without a secret.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        time: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), Refused> {
        let Some(secret) = self.secret.as_deref() else {
            return Ok(());
        };
        let (Some(time), Some(signature)) = (time, signature) else {
            return Err(Refused::Missing);
        };
        let time: i64 = time.parse().map_err(|_| Refused::Missing)?;
        if (now - time).abs() > MAX_SKEW_SECS {
            return Err(Refused::Stale);
        }
        let tag = decode_hex(signature).ok_or(Refused::BadSignature)?;
        Self::mac(secret, method, path_and_query, time, body)
            .verify_slice(&tag)
            .map_err(|_| Refused::BadSignature)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        auth: &ClusterAuth,
        headers: &[(&str, String); 2],
        path: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), Refused> {
        auth.verify(
            "POST",
            path,
            Some(&headers[0].1),
            Some(&headers[1].1),
            body,
            now,
        )
    }

    #[test]
    fn a_signed_call_passes_and_any_change_fails() {
        let auth = ClusterAuth::new("cluster-secret");
        let path = "/internal/v1/sync";
        let headers = auth.sign("POST", path, 1_000, b"records").unwrap();
        assert_eq!(check(&auth, &headers, path, b"records", 1_010), Ok(()));
        assert_eq!(
            check(&auth, &headers, path, b"other records", 1_010),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            check(&auth, &headers, "/internal/v1/search", b"records", 1_010),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            auth.verify(
                "GET",
                path,
                Some(&headers[0].1),
                Some(&headers[1].1),
                b"records",
                1_010
            ),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            check(&auth, &headers, path, b"records", 1_031),
            Err(Refused::Stale)
        );
        let other = ClusterAuth::new("another-secret");
        assert_eq!(
            check(&other, &headers, path, b"records", 1_000),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            auth.verify("POST", path, None, None, b"records", 1_000),
            Err(Refused::Missing)
        );
        assert_eq!(
            auth.verify("POST", path, Some("1000"), Some("zz"), b"records", 1_000),
            Err(Refused::BadSignature)
        );
    }

    #[test]
    fn without_a_secret_nothing_is_signed_or_checked() {
        let open = ClusterAuth::new("");
        assert!(!open.enabled());
        assert!(open.sign("GET", "/internal/v1/info", 1, b"").is_none());
        assert_eq!(
            open.verify("GET", "/internal/v1/info", None, None, b"", 1),
            Ok(())
        );
    }
}
