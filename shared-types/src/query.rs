//! Query-string decoding shared by the edge and the core, so both accept and reject the same
//! query strings with the same error.

use serde::de::DeserializeOwned;

use crate::{ErrorCode, ValidationError};

/// Decodes a raw query string (without `?`) into `T`; an absent or empty query gives
/// `T::default()`. Invalid percent-encoded UTF-8, unknown and duplicate fields are errors.
pub fn parse_query<T: DeserializeOwned + Default>(raw: Option<&str>) -> Result<T, ValidationError> {
    let invalid = |message: String| ValidationError {
        code: ErrorCode::InvalidQuery,
        message,
    };
    match raw {
        None | Some("") => Ok(T::default()),
        Some(q) => {
            // serde_urlencoded decodes invalid UTF-8 lossily; reject it instead of guessing.
            if !percent_decodes_to_utf8(q) {
                return Err(invalid("query string is not valid UTF-8".into()));
            }
            serde_urlencoded::from_str(q).map_err(|e| invalid(e.to_string()))
        }
    }
}

/// Whether every `%XX`-decoded key and value of a query string is valid UTF-8.
fn percent_decodes_to_utf8(query: &str) -> bool {
    query.split(['&', '=']).all(|part| {
        let bytes = part.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'%', Some(b)) => {
                    decoded.push(b);
                    i += 3;
                }
                (b, _) => {
                    decoded.push(b);
                    i += 1;
                }
            }
        }
        std::str::from_utf8(&decoded).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecommendationQuery, SimilarQuery};

    #[test]
    fn decodes_known_fields_and_rejects_the_rest() {
        let q: RecommendationQuery =
            parse_query(Some("user_id=u1&limit=5&q=space%20films")).unwrap();
        assert_eq!(q.user_id.as_deref(), Some("u1"));
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.q.as_deref(), Some("space films"));
        let empty: SimilarQuery = parse_query(None).unwrap();
        assert_eq!(empty, SimilarQuery::default());
        for bad in ["limit=abc", "nope=1", "limit=1&limit=2", "q=%FF%FE"] {
            let err = parse_query::<RecommendationQuery>(Some(bad)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidQuery, "{bad}");
        }
    }
}
