//! Request signing between the edge and the core.
//!
//! The edge signs every forwarded request with HMAC-SHA256 over its method, host, path, raw
//! query, a SHA-256 of its body, the end user the edge authenticated (if any), a unix
//! timestamp and a random nonce, using a secret shared with the core. The core, when it has
//! the secret, rejects requests that are unsigned, wrongly signed, outside the allowed clock
//! skew, or that reuse a nonce already seen (a replay). Because the body and the user are
//! covered, a captured request cannot be replayed with another body or for another user.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Unix seconds at which the edge signed the request.
pub const EDGE_TIMESTAMP_HEADER: &str = "x-edge-timestamp";
/// Random per-request value, so two requests in the same second never share a signature.
pub const EDGE_NONCE_HEADER: &str = "x-edge-nonce";
/// Lowercase hex HMAC-SHA256 of [`SignedParts::signing_payload`].
pub const EDGE_SIGNATURE_HEADER: &str = "x-edge-signature";
/// The end user the edge authenticated (from a verified token); absent for anonymous calls.
pub const EDGE_USER_HEADER: &str = "x-edge-user";
/// An operator API key (`catalog:write`, `events:write`, `admin:*`); never an end-user token.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The fields a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    pub method: &'a str,
    /// The `Host` the edge sent the request to (the core's origin host, with any port).
    pub host: &'a str,
    pub path: &'a str,
    /// Raw query string without `?` (empty when there is none), exactly as sent.
    pub query: &'a str,
    /// Lowercase hex SHA-256 of the body ([`body_digest`]; that of the empty body for none).
    pub body_sha256: &'a str,
    /// The authenticated end user, empty for anonymous requests.
    pub user: &'a str,
    pub timestamp: i64,
    pub nonce: &'a str,
}

/// Lowercase hex SHA-256 of a request body.
pub fn body_digest(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SignedParts<'_> {
    /// Canonical form: every field length-prefixed (`{len}:{value}\n`), so no choice of
    /// field values can produce another request's payload.
    pub fn signing_payload(&self) -> String {
        let method = self.method.to_ascii_uppercase();
        let timestamp = self.timestamp.to_string();
        let mut out = String::from("edge-v2\n");
        for field in [
            method.as_str(),
            self.host,
            self.path,
            self.query,
            self.body_sha256,
            self.user,
            timestamp.as_str(),
            self.nonce,
        ] {
            out.push_str(&format!("{}:{field}\n", field.len()));
        }
        out
    }

    fn mac(&self, secret: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(self.signing_payload().as_bytes());
        mac
    }

    /// Lowercase hex signature.
    pub fn sign(&self, secret: &[u8]) -> String {
        hex(&self.mac(secret).finalize().into_bytes())
    }

    /// Constant-time check of a hex signature.
    pub fn verify(&self, secret: &[u8], signature_hex: &str) -> bool {
        let Some(bytes) = decode_hex(signature_hex) else {
            return false;
        };
        self.mac(secret).verify_slice(&bytes).is_ok()
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

    fn parts(query: &str) -> SignedParts<'_> {
        SignedParts {
            method: "get",
            host: "core.internal:8080",
            path: "/v1/recommendations",
            query,
            body_sha256: EMPTY_SHA256,
            user: "u1",
            timestamp: 1_700_000_000,
            nonce: "n1",
        }
    }

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn signature_matches_an_independent_hmac_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = Hmac::<Sha256>::new_from_slice(b"Jefe")
            .unwrap()
            .chain_update(b"what do ya want for nothing?")
            .finalize()
            .into_bytes();
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(body_digest(b""), EMPTY_SHA256);
        assert_eq!(
            parts("a=1").signing_payload(),
            format!(
                "edge-v2\n3:GET\n18:core.internal:8080\n19:/v1/recommendations\n3:a=1\n\
                 64:{EMPTY_SHA256}\n2:u1\n10:1700000000\n2:n1\n"
            )
        );
    }

    #[test]
    fn any_changed_field_or_secret_fails_verification() {
        let sig = parts("user_id=u1").sign(b"secret");
        assert_eq!(sig.len(), 64);
        assert!(parts("user_id=u1").verify(b"secret", &sig));
        assert!(!parts("user_id=u2").verify(b"secret", &sig));
        assert!(!parts("user_id=u1").verify(b"other", &sig));
        let changed: [&dyn Fn(&mut SignedParts<'_>); 6] = [
            &|p| p.timestamp += 1,
            &|p| p.nonce = "n2",
            &|p| p.host = "evil.example",
            &|p| p.body_sha256 = "00",
            &|p| p.user = "u2",
            &|p| p.user = "",
        ];
        for change in changed {
            let mut p = parts("user_id=u1");
            change(&mut p);
            assert!(!p.verify(b"secret", &sig), "{p:?}");
        }
        assert!(!parts("user_id=u1").verify(b"secret", "zz"));
        assert!(!parts("user_id=u1").verify(b"secret", &sig[..63]));
    }

    #[test]
    fn length_prefixes_keep_field_boundaries() {
        // Moving text from one field to its neighbour changes the payload.
        let mut a = parts("x");
        a.path = "/v1/a\n1:b";
        let mut b = parts("x");
        b.path = "/v1/a";
        b.query = "b\n1:x";
        assert_ne!(a.signing_payload(), b.signing_payload());
    }
}
