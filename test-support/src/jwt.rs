//! HS256 end-user tokens, as an identity provider would issue them, for requests through the
//! edge (which verifies them). Test and benchmark secrets only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A compact JWT (`header.claims.signature`) over `claims`, signed HS256 with `secret`.
pub fn hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!(
        "{}.{}",
        b64(&serde_json::json!({"alg": "HS256", "typ": "JWT"})),
        b64(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_7515_shape() {
        let token = hs256(b"k", &serde_json::json!({"sub": "alice"}));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
        let claims = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
        assert_eq!(claims, br#"{"sub":"alice"}"#);
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 32);
    }
}
