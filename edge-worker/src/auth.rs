//! End-user identity: the edge verifies `Authorization: Bearer <JWT>` so that the core only
//! ever personalises for, and records events of, a user the edge has authenticated.
//!
//! Pure and tested natively: token parsing, the algorithm allow-list (HS256, RS256, ES256;
//! never `none`), key choice by `kid` (the key's type must match `alg`, and HS256 only ever
//! uses the configured secret, never a published key), HS256 verification, the claims
//! (`exp`, `nbf`, `iss`, `aud`, the user claim) and when to refetch the key set. RS256 and
//! ES256 signatures are checked by the runtime's WebCrypto (in `glue`) with the key chosen
//! here: no bignum or curve code in the worker.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use shared_types::validate_user_id;

use crate::config::JwtConfig;
use crate::EdgeError;

/// Longest token accepted; real ones are well under 2 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Fetches of the key set are at least this far apart, whatever asks for one (expiry, a
/// `kid` not seen yet after a rotation, a failed fetch), so forged `kid`s cannot make the
/// edge hammer the issuer.
pub const JWKS_MIN_REFETCH_MS: u64 = 60_000;
/// Smallest RSA modulus accepted (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

fn unauthorized(why: impl Into<String>) -> EdgeError {
    EdgeError::Unauthorized(why.into())
}

/// The token in an `Authorization` header: `None` without one (an anonymous caller); any
/// other scheme is refused rather than ignored, so a broken client hears about it.
pub fn bearer_token(authorization: Option<&str>) -> Result<Option<&str>, EdgeError> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let token = value
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| unauthorized("send Authorization: Bearer <token>"))?;
    Ok(Some(token))
}

/// The signature algorithms the edge accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Rs256,
    Es256,
}

impl Alg {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Self::Hs256),
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }
}

/// A parsed, not yet verified token.
#[derive(Debug)]
pub struct Token<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    /// `header.payload`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
    claims: Map<String, Value>,
}

fn decode_part(part: &str) -> Result<Vec<u8>, EdgeError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| unauthorized("malformed token"))
}

impl<'a> Token<'a> {
    pub fn parse(raw: &'a str) -> Result<Self, EdgeError> {
        if raw.len() > MAX_TOKEN_BYTES {
            return Err(unauthorized("token too long"));
        }
        let (signing_input, signature) = raw
            .rsplit_once('.')
            .ok_or_else(|| unauthorized("malformed token"))?;
        let (header, payload) = signing_input
            .split_once('.')
            .filter(|(_, payload)| !payload.contains('.'))
            .ok_or_else(|| unauthorized("malformed token"))?;
        let object = |part: &str, what: &str| match serde_json::from_slice(&decode_part(part)?) {
            Ok(Value::Object(fields)) => Ok(fields),
            _ => Err(unauthorized(format!("malformed token {what}"))),
        };
        let header = object(header, "header")?;
        // Extensions the verifier must understand (RFC 7515 4.1.11): the edge knows none.
        if header.contains_key("crit") {
            return Err(unauthorized("token has critical extensions"));
        }
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let alg = Alg::parse(alg_name)
            .ok_or_else(|| unauthorized(format!("token algorithm '{alg_name}' is not accepted")))?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(unauthorized("malformed token header")),
        };
        let claims = object(payload, "claims")?;
        let signature = decode_part(signature)?;
        // ES256 is r||s, 32 bytes each (JWS form, which WebCrypto takes as is).
        let plausible = match alg {
            Alg::Hs256 => signature.len() == 32,
            Alg::Rs256 => signature.len() >= MIN_RSA_MODULUS_BYTES,
            Alg::Es256 => signature.len() == 64,
        };
        if !plausible {
            return Err(unauthorized("bad token signature"));
        }
        Ok(Self {
            alg,
            kid,
            signing_input,
            signature,
            claims,
        })
    }

    /// HS256 with the configured secret only: a published (public) key is never an HMAC
    /// key, which closes the RS256-to-HS256 confusion.
    pub fn verify_hs256(&self, config: &JwtConfig) -> Result<(), EdgeError> {
        let secret = config
            .hs256_secret
            .as_deref()
            .ok_or_else(|| unauthorized("token algorithm 'HS256' is not accepted"))?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(self.signing_input.as_bytes());
        mac.verify_slice(&self.signature)
            .map_err(|_| unauthorized("bad token signature"))
    }

    /// Checks the claims of a token whose signature is verified and returns its user.
    pub fn user(&self, config: &JwtConfig, now_secs: i64) -> Result<String, EdgeError> {
        let leeway = i64::from(config.leeway_secs);
        let time = |name: &str| -> Result<Option<i64>, EdgeError> {
            match self.claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|t| t.is_finite())
                    .map(|t| Some(t.floor() as i64))
                    .ok_or_else(|| unauthorized(format!("token '{name}' is not a number"))),
            }
        };
        // A token without an expiry would be a password that never changes.
        let exp = time("exp")?.ok_or_else(|| unauthorized("token has no 'exp'"))?;
        if now_secs >= exp.saturating_add(leeway) {
            return Err(unauthorized("token expired"));
        }
        if time("nbf")?.is_some_and(|nbf| now_secs.saturating_add(leeway) < nbf) {
            return Err(unauthorized("token not yet valid"));
        }
        if self.claims.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
            return Err(unauthorized("token from another issuer"));
        }
        let for_us = match self.claims.get("aud") {
            Some(Value::String(aud)) => *aud == config.audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&config.audience)),
            _ => false,
        };
        if !for_us {
            return Err(unauthorized("token for another audience"));
        }
        let user = self
            .claims
            .get(&config.user_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| unauthorized(format!("token has no '{}'", config.user_claim)))?;
        validate_user_id(user)
            .map_err(|_| unauthorized("the token's user is not a valid user_id"))?;
        Ok(user.to_string())
    }
}

/// A published key usable for signatures, with its type fixed by what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Base64url modulus and exponent.
    Rsa { n: String, e: String },
    /// Base64url coordinates on P-256.
    P256 { x: String, y: String },
}

impl PublicKey {
    fn alg(&self) -> Alg {
        match self {
            Self::Rsa { .. } => Alg::Rs256,
            Self::P256 { .. } => Alg::Es256,
        }
    }

    /// The key as a minimal JWK for WebCrypto's `importKey("jwk", ...)`. The values are
    /// base64url (checked when the key set was read), so they need no JSON escaping.
    pub fn webcrypto_jwk(&self) -> String {
        match self {
            Self::Rsa { n, e } => format!(r#"{{"kty":"RSA","n":"{n}","e":"{e}"}}"#),
            Self::P256 { x, y } => format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}"}}"#),
        }
    }

    /// WebCrypto algorithm parameters (JSON): for `importKey`, then for `verify`.
    pub fn webcrypto_params(&self) -> (&'static str, &'static str) {
        match self {
            Self::Rsa { .. } => (
                r#"{"name":"RSASSA-PKCS1-v1_5","hash":"SHA-256"}"#,
                r#"{"name":"RSASSA-PKCS1-v1_5"}"#,
            ),
            Self::P256 { .. } => (
                r#"{"name":"ECDSA","namedCurve":"P-256"}"#,
                r#"{"name":"ECDSA","hash":"SHA-256"}"#,
            ),
        }
    }
}

/// One published key if the edge can verify with it; symmetric keys, encryption keys,
/// other curves, short RSA moduli and keys pinned to another algorithm are left out.
fn usable_key(jwk: &Value) -> Option<(Option<String>, PublicKey)> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    let b64_len = |name: &str| Some(URL_SAFE_NO_PAD.decode(field(name)?).ok()?.len());
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let owned = |name: &str| field(name).map(String::from);
    let key = match (field("kty")?, field("crv")) {
        ("RSA", _) if b64_len("n")? >= MIN_RSA_MODULUS_BYTES && b64_len("e")? > 0 => {
            PublicKey::Rsa {
                n: owned("n")?,
                e: owned("e")?,
            }
        }
        ("EC", Some("P-256")) if b64_len("x")? == 32 && b64_len("y")? == 32 => PublicKey::P256 {
            x: owned("x")?,
            y: owned("y")?,
        },
        _ => return None,
    };
    if field("alg").is_some_and(|alg| Alg::parse(alg) != Some(key.alg())) {
        return None;
    }
    Some((owned("kid"), key))
}

/// The issuer's published signature keys (a JWKS document).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<(Option<String>, PublicKey)>,
}

/// What the key set holds for a token.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyLookup<'k> {
    Found(&'k PublicKey),
    /// No key has the token's `kid`: the issuer may have rotated keys since the last fetch.
    UnknownKid,
}

impl KeySet {
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let doc: Value = serde_json::from_slice(json).map_err(|e| format!("not a JWKS: {e}"))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("not a JWKS: no 'keys' array")?;
        Ok(Self {
            keys: keys.iter().filter_map(usable_key).collect(),
        })
    }

    /// The key for a token: the one with its `kid` (or the only key of its type when the
    /// token names none), which must be of the type `alg` requires.
    pub fn find(&self, alg: Alg, kid: Option<&str>) -> Result<KeyLookup<'_>, EdgeError> {
        let of_type = |key: &&PublicKey| key.alg() == alg;
        let Some(kid) = kid else {
            let mut typed = self.keys.iter().map(|(_, k)| k).filter(of_type);
            return match (typed.next(), typed.next()) {
                (Some(key), None) => Ok(KeyLookup::Found(key)),
                _ => Err(unauthorized("token names no key ('kid')")),
            };
        };
        let mut named = self
            .keys
            .iter()
            .filter(|(k, _)| k.as_deref() == Some(kid))
            .map(|(_, key)| key)
            .peekable();
        if named.peek().is_none() {
            return Ok(KeyLookup::UnknownKid);
        }
        named
            .find(of_type)
            .map(KeyLookup::Found)
            .ok_or_else(|| unauthorized(format!("key '{kid}' is not for {}", alg.name())))
    }
}

/// The per-isolate copy of the key set and when it was fetched.
#[derive(Debug, Default)]
pub struct JwksCache {
    keys: Option<KeySet>,
    fetched_at_ms: u64,
    last_attempt_ms: Option<u64>,
}

impl JwksCache {
    /// Whether to fetch the key set before looking up `kid`: nothing cached yet, the copy is
    /// older than its TTL, or it lacks `kid` (a rotation) — but never twice within
    /// [`JWKS_MIN_REFETCH_MS`].
    pub fn refresh_due(&self, alg: Alg, kid: Option<&str>, now_ms: u64, ttl_secs: u32) -> bool {
        let wanted = match &self.keys {
            None => true,
            Some(keys) => {
                now_ms.saturating_sub(self.fetched_at_ms) >= u64::from(ttl_secs) * 1000
                    || matches!(keys.find(alg, kid), Ok(KeyLookup::UnknownKid))
            }
        };
        wanted
            && self
                .last_attempt_ms
                .is_none_or(|at| now_ms.saturating_sub(at) >= JWKS_MIN_REFETCH_MS)
    }

    /// Records a fetch attempt, successful or not.
    pub fn attempted(&mut self, now_ms: u64) {
        self.last_attempt_ms = Some(now_ms);
    }

    pub fn store(&mut self, keys: KeySet, now_ms: u64) {
        self.keys = Some(keys);
        self.fetched_at_ms = now_ms;
    }

    /// The key for a token from the cached set (kept past its TTL while fetches fail).
    pub fn key(&self, alg: Alg, kid: Option<&str>) -> Result<PublicKey, EdgeError> {
        let keys = self.keys.as_ref().ok_or(EdgeError::KeysUnavailable)?;
        match keys.find(alg, kid)? {
            KeyLookup::Found(key) => Ok(key.clone()),
            KeyLookup::UnknownKid => Err(unauthorized("token signed by an unknown key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-only-hs256-secret-0123456789abcdef";
    /// 2030-01-01: inside the fixtures' validity (they expire in 2100).
    const NOW: i64 = 1_893_456_000;

    fn config() -> JwtConfig {
        JwtConfig {
            hs256_secret: Some(SECRET.into()),
            jwks_url: Some("https://id.test.example/jwks.json".into()),
            jwks_ttl_secs: 600,
            issuer: "https://id.test.example".into(),
            audience: "semrec-edge-test".into(),
            user_claim: "sub".into(),
            leeway_secs: 60,
        }
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn claims(extra: Value) -> Value {
        let mut c = serde_json::json!({
            "iss": "https://id.test.example", "aud": "semrec-edge-test", "sub": "alice",
            "exp": NOW + 3600,
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn hs256_with(header: Value, claims: &Value, secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn hs256(claims: &Value) -> String {
        hs256_with(
            serde_json::json!({"alg": "HS256", "typ": "JWT"}),
            claims,
            SECRET.as_bytes(),
        )
    }

    /// The whole HS256 path: parse, verify, claims.
    fn check(token: &str, config: &JwtConfig, now: i64) -> Result<String, EdgeError> {
        let token = Token::parse(token)?;
        match token.alg {
            Alg::Hs256 => token.verify_hs256(config)?,
            _ => panic!("not an HS256 token"),
        }
        token.user(config, now)
    }

    fn reason(result: Result<impl std::fmt::Debug, EdgeError>) -> String {
        match result {
            Err(EdgeError::Unauthorized(why)) => why,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    fn fixture(name: &str) -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tokens.json");
        let tokens: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        tokens[name]
            .as_str()
            .unwrap_or_else(|| panic!("no fixture {name}"))
            .into()
    }

    fn jwks() -> KeySet {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwks.json");
        KeySet::parse(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer_token(None), Ok(None));
        assert_eq!(bearer_token(Some("Bearer abc")), Ok(Some("abc")));
        assert_eq!(bearer_token(Some("bearer  abc ")), Ok(Some("abc")));
        for bad in ["Basic dXNlcjpwdw==", "Bearer", "Bearer   ", "", "abc"] {
            assert!(reason(bearer_token(Some(bad))).contains("Bearer"), "{bad}");
        }
    }

    #[test]
    fn a_valid_hs256_token_names_its_user() {
        assert_eq!(
            check(&hs256(&claims(serde_json::json!({}))), &config(), NOW).unwrap(),
            "alice"
        );
        // `aud` may be an array; the user may come from another claim.
        let mut custom = config();
        custom.user_claim = "uid".into();
        let token = hs256(&claims(
            serde_json::json!({"aud": ["x", "semrec-edge-test"], "uid": "u-42"}),
        ));
        assert_eq!(check(&token, &custom, NOW).unwrap(), "u-42");
    }

    #[test]
    fn forged_tokens_are_refused() {
        let wrong_key = hs256_with(
            serde_json::json!({"alg": "HS256"}),
            &claims(serde_json::json!({})),
            b"another-secret-another-secret-000",
        );
        assert_eq!(
            reason(check(&wrong_key, &config(), NOW)),
            "bad token signature"
        );
        // A payload swapped under a genuine signature.
        let genuine = hs256(&claims(serde_json::json!({})));
        let bob = b64(claims(serde_json::json!({"sub": "bob"}))
            .to_string()
            .as_bytes());
        let mut parts: Vec<&str> = genuine.split('.').collect();
        parts[1] = &bob;
        assert_eq!(
            reason(check(&parts.join("."), &config(), NOW)),
            "bad token signature"
        );
        for malformed in ["", "a.b", "a.b.c.d", "!!.e30.AA", &genuine[1..]] {
            assert!(
                reason(Token::parse(malformed)).starts_with("malformed"),
                "{malformed}"
            );
        }
        assert_eq!(
            reason(Token::parse(&"a".repeat(MAX_TOKEN_BYTES + 1))),
            "token too long"
        );
    }

    #[test]
    fn time_claims_allow_only_the_leeway() {
        let at = |extra: Value| check(&hs256(&claims(extra)), &config(), NOW);
        assert_eq!(
            reason(at(serde_json::json!({"exp": NOW - 61}))),
            "token expired"
        );
        assert!(
            at(serde_json::json!({"exp": NOW - 59})).is_ok(),
            "within the leeway"
        );
        assert_eq!(
            reason(at(serde_json::json!({"exp": null}))),
            "token has no 'exp'"
        );
        assert!(reason(at(serde_json::json!({"exp": "soon"}))).contains("not a number"));
        assert_eq!(
            reason(at(serde_json::json!({"nbf": NOW + 61}))),
            "token not yet valid"
        );
        assert!(
            at(serde_json::json!({"nbf": NOW + 59})).is_ok(),
            "within the leeway"
        );
        let mut strict = config();
        strict.leeway_secs = 0;
        let just_expired = hs256(&claims(serde_json::json!({"exp": NOW})));
        assert_eq!(reason(check(&just_expired, &strict, NOW)), "token expired");
    }

    #[test]
    fn issuer_audience_and_user_are_checked() {
        let at = |extra: Value| reason(check(&hs256(&claims(extra)), &config(), NOW));
        assert_eq!(
            at(serde_json::json!({"iss": "https://evil.example"})),
            "token from another issuer"
        );
        assert_eq!(
            at(serde_json::json!({"iss": null})),
            "token from another issuer"
        );
        assert_eq!(
            at(serde_json::json!({"aud": "other-service"})),
            "token for another audience"
        );
        assert_eq!(
            at(serde_json::json!({"aud": ["a", "b"]})),
            "token for another audience"
        );
        assert_eq!(
            at(serde_json::json!({"aud": null})),
            "token for another audience"
        );
        assert_eq!(at(serde_json::json!({"sub": null})), "token has no 'sub'");
        assert_eq!(
            at(serde_json::json!({"sub": "a:b"})),
            "the token's user is not a valid user_id"
        );
        assert_eq!(at(serde_json::json!({"sub": 7})), "token has no 'sub'");
    }

    #[test]
    fn unsigned_and_unknown_algorithms_are_refused() {
        assert_eq!(
            reason(Token::parse(&fixture("alg_none"))),
            "token algorithm 'none' is not accepted"
        );
        for alg in ["HS512", "RS384", "PS256", "EdDSA", "None", "hs256"] {
            let token = hs256_with(
                serde_json::json!({"alg": alg}),
                &claims(serde_json::json!({})),
                SECRET.as_bytes(),
            );
            assert!(
                reason(Token::parse(&token)).contains("not accepted"),
                "{alg}"
            );
        }
        let critical = hs256_with(
            serde_json::json!({"alg": "HS256", "crit": ["b64"], "b64": false}),
            &claims(serde_json::json!({})),
            SECRET.as_bytes(),
        );
        assert_eq!(
            reason(Token::parse(&critical)),
            "token has critical extensions"
        );
    }

    #[test]
    fn hs256_never_uses_a_published_key() {
        // Signed with the RSA public key (PEM) as HMAC key, naming the RSA key's kid.
        let confused = fixture("hs256_keyed_with_rsa_public_pem");
        let mut jwks_only = config();
        jwks_only.hs256_secret = None;
        assert_eq!(
            reason(check(&confused, &jwks_only, NOW)),
            "token algorithm 'HS256' is not accepted"
        );
        assert_eq!(
            reason(check(&confused, &config(), NOW)),
            "bad token signature"
        );
        // A symmetric key published in the JWKS is not a key either.
        assert_eq!(
            reason(check(&fixture("hs256_keyed_with_oct_jwk"), &config(), NOW)),
            "bad token signature"
        );
        assert!(jwks()
            .find(Alg::Hs256, Some("test-oct-1"))
            .is_ok_and(|l| l == KeyLookup::UnknownKid));
        assert!(jwks().find(Alg::Hs256, Some("test-rsa-1")).is_err());
    }

    #[test]
    fn keys_are_chosen_by_kid_and_must_match_the_algorithm() {
        let keys = jwks();
        let find = |name: &str| {
            let token = fixture(name);
            let token = Token::parse(&token).unwrap();
            keys.find(token.alg, token.kid.as_deref()).map(|l| match l {
                KeyLookup::Found(key) => Some(key.clone()),
                KeyLookup::UnknownKid => None,
            })
        };
        assert!(matches!(
            find("rs256_alice"),
            Ok(Some(PublicKey::Rsa { .. }))
        ));
        assert!(matches!(
            find("es256_alice"),
            Ok(Some(PublicKey::P256 { .. }))
        ));
        assert!(matches!(
            find("rs256_alice_no_kid"),
            Ok(Some(PublicKey::Rsa { .. }))
        ));
        assert_eq!(find("rs256_unknown_kid"), Ok(None));
        assert_eq!(
            reason(find("es256_with_rsa_kid")),
            "key 'test-rsa-1' is not for ES256"
        );
        assert_eq!(
            reason(find("rs256_with_ec_kid")),
            "key 'test-ec-1' is not for RS256"
        );
        // The claims of the fixtures, as they would be read after WebCrypto's verdict.
        let user = |name: &str| Token::parse(&fixture(name)).unwrap().user(&config(), NOW);
        assert_eq!(user("rs256_alice").unwrap(), "alice");
        assert_eq!(user("es256_alice").unwrap(), "alice");
        assert_eq!(user("rs256_alice_array_aud").unwrap(), "alice");
        assert_eq!(reason(user("rs256_expired")), "token expired");
        let PublicKey::Rsa { n, e } = find("rs256_alice").unwrap().unwrap() else {
            unreachable!()
        };
        assert_eq!((n.len(), e.as_str()), (342, "AQAB"));
    }

    #[test]
    fn unusable_published_keys_are_left_out() {
        let keys = KeySet::parse(
            br#"{"keys":[
                {"kty":"RSA","kid":"short","n":"AQAB","e":"AQAB"},
                {"kty":"EC","kid":"p384","crv":"P-384","x":"AA","y":"AA"},
                {"kty":"EC","kid":"enc","use":"enc","crv":"P-256",
                 "x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
                {"kty":"EC","kid":"pinned","alg":"RS256","crv":"P-256",
                 "x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
                {"kty":"EC","kid":"ok","crv":"P-256",
                 "x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
                "not even an object"
            ]}"#,
        )
        .unwrap();
        assert_eq!(keys.keys.len(), 1);
        assert_eq!(keys.keys[0].0.as_deref(), Some("ok"));
        assert!(KeySet::parse(b"[]").is_err());
        let jwk: Value = serde_json::from_str(&keys.keys[0].1.webcrypto_jwk()).unwrap();
        assert_eq!(
            (jwk["kty"].as_str(), jwk["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
    }

    #[test]
    fn the_key_set_is_refetched_on_expiry_and_rotation_at_most_once_a_minute() {
        let mut cache = JwksCache::default();
        let t0 = 1_000_000;
        assert!(cache.refresh_due(Alg::Rs256, Some("test-rsa-1"), t0, 600));
        assert_eq!(
            cache.key(Alg::Rs256, Some("test-rsa-1")),
            Err(EdgeError::KeysUnavailable)
        );
        cache.attempted(t0);
        // The fetch failed: not again for a minute.
        assert!(!cache.refresh_due(Alg::Rs256, Some("test-rsa-1"), t0 + 59_999, 600));
        assert!(cache.refresh_due(Alg::Rs256, Some("test-rsa-1"), t0 + 60_000, 600));
        cache.attempted(t0 + 60_000);
        cache.store(jwks(), t0 + 60_000);
        let t1 = t0 + 60_000;
        assert!(!cache.refresh_due(Alg::Rs256, Some("test-rsa-1"), t1 + 1, 600));
        assert!(cache.key(Alg::Rs256, Some("test-rsa-1")).is_ok());
        // An unknown kid (rotation) triggers a fetch, but only a minute after the last one.
        assert!(!cache.refresh_due(Alg::Rs256, Some("new"), t1 + 30_000, 600));
        assert!(cache.refresh_due(Alg::Rs256, Some("new"), t1 + 60_000, 600));
        assert_eq!(
            reason(cache.key(Alg::Rs256, Some("new"))),
            "token signed by an unknown key"
        );
        // Expiry: refetched after the TTL; the old keys serve meanwhile.
        assert!(!cache.refresh_due(Alg::Es256, Some("test-ec-1"), t1 + 599_999, 600));
        assert!(cache.refresh_due(Alg::Es256, Some("test-ec-1"), t1 + 600_000, 600));
        cache.attempted(t1 + 600_000);
        assert!(cache.key(Alg::Es256, Some("test-ec-1")).is_ok());
    }
}
