//! The edge-to-core request signature (scheme `edge-v2`, see `shared_types::edge_auth`) over a
//! raw request: the headers the edge adds when it forwards one, and the check the core makes.
//! Tests acting as the edge sign with it; tests acting as the core verify with it.

use shared_types::edge_auth::{
    body_digest, SignedParts, EDGE_NONCE_HEADER, EDGE_SIGNATURE_HEADER, EDGE_TIMESTAMP_HEADER,
    EDGE_USER_HEADER,
};

/// A request as the edge forwards it to the core.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded<'a> {
    pub method: &'a str,
    /// The `Host` it is sent to (the core's origin host, with any port).
    pub host: &'a str,
    /// Path and raw query, e.g. `/v1/recommendations?limit=5`.
    pub target: &'a str,
    pub body: &'a [u8],
    /// The end user the edge authenticated; `None` (or empty) for anonymous requests.
    pub user: Option<&'a str>,
    pub timestamp: i64,
    pub nonce: &'a str,
}

impl Forwarded<'_> {
    /// Runs `f` on the fields the signature covers.
    fn with_parts<R>(&self, f: impl FnOnce(&SignedParts<'_>) -> R) -> R {
        let (path, query) = self.target.split_once('?').unwrap_or((self.target, ""));
        f(&SignedParts {
            method: self.method,
            host: self.host,
            path,
            query,
            body_sha256: &body_digest(self.body),
            user: self.user.unwrap_or(""),
            timestamp: self.timestamp,
            nonce: self.nonce,
        })
    }

    /// The headers the edge adds: timestamp, nonce, signature, and the user when there is one.
    pub fn headers(&self, secret: &[u8]) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (EDGE_TIMESTAMP_HEADER, self.timestamp.to_string()),
            (EDGE_NONCE_HEADER, self.nonce.to_string()),
            (EDGE_SIGNATURE_HEADER, self.with_parts(|p| p.sign(secret))),
        ];
        if let Some(user) = self.user {
            headers.push((EDGE_USER_HEADER, user.to_string()));
        }
        headers
    }

    /// Whether `signature` (the `x-edge-signature` received) signs this very request under
    /// `secret`, as the core checks it.
    pub fn verifies(&self, secret: &[u8], signature: &str) -> bool {
        self.with_parts(|p| p.verify(secret, signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_headers_verify_and_cover_the_request() {
        let request = Forwarded {
            method: "POST",
            host: "core:8080",
            target: "/v1/events?x=1",
            body: b"{}",
            user: Some("alice"),
            timestamp: 1_700_000_000,
            nonce: "n1",
        };
        let headers = request.headers(b"secret");
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get(EDGE_USER_HEADER), Some("alice"));
        assert_eq!(get(EDGE_TIMESTAMP_HEADER), Some("1700000000"));
        let signature = get(EDGE_SIGNATURE_HEADER).unwrap();
        assert!(request.verifies(b"secret", signature));
        assert!(!request.verifies(b"other", signature));
        for changed in [
            Forwarded {
                body: b"{ }",
                ..request
            },
            Forwarded {
                target: "/v1/events?x=2",
                ..request
            },
            Forwarded {
                user: None,
                ..request
            },
        ] {
            assert!(!changed.verifies(b"secret", signature), "{changed:?}");
        }
        let anonymous = Forwarded {
            user: None,
            ..request
        };
        assert!(anonymous
            .headers(b"secret")
            .iter()
            .all(|(k, _)| *k != EDGE_USER_HEADER));
    }
}
