//! Input rules shared by the edge and the core, so both reject the same requests the same way.

use std::fmt;

use crate::ErrorCode;

/// Results returned when a request gives no `limit`.
pub const DEFAULT_LIMIT: u32 = 10;
/// Largest `limit` a client may ask for.
pub const MAX_LIMIT: u32 = 100;
/// Longest free-text intent `q`, in bytes.
pub const MAX_QUERY_TEXT_BYTES: usize = 512;
const MAX_ID_BYTES: usize = 64;

/// A client input that breaks one of the shared rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Stable machine-readable code, used as the error body's `code`.
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ValidationError {}

fn validate_id(kind: &'static str, code: ErrorCode, id: &str) -> Result<(), ValidationError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError {
            code,
            message: format!(
                "{kind} must be 1-{MAX_ID_BYTES} characters of A-Z, a-z, 0-9, '_', '-' or '.'"
            ),
        })
    }
}

/// User ids become part of cache keys, so they are restricted to a safe alphabet.
pub fn validate_user_id(id: &str) -> Result<(), ValidationError> {
    validate_id("user_id", ErrorCode::InvalidUserId, id)
}

/// Item ids appear in URLs and cache keys; same alphabet as user ids.
pub fn validate_item_id(id: &str) -> Result<(), ValidationError> {
    validate_id("item id", ErrorCode::InvalidItemId, id)
}

/// Checks `limit` and returns the effective value.
pub fn effective_limit(limit: Option<u32>) -> Result<u32, ValidationError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        l @ 1..=MAX_LIMIT => Ok(l),
        l => Err(ValidationError {
            code: ErrorCode::InvalidLimit,
            message: format!("limit must be between 1 and {MAX_LIMIT}, got {l}"),
        }),
    }
}

/// Trims, lowercases and collapses whitespace of a free-text intent so that trivially
/// different spellings share a cache entry; rejects oversized text. Empty becomes `None`.
pub fn normalise_query_text(q: Option<&str>) -> Result<Option<String>, ValidationError> {
    let Some(q) = q else { return Ok(None) };
    if q.len() > MAX_QUERY_TEXT_BYTES {
        return Err(ValidationError {
            code: ErrorCode::QueryTooLong,
            message: format!("q must be at most {MAX_QUERY_TEXT_BYTES} bytes"),
        });
    }
    let normalised = q
        .split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ");
    Ok((!normalised.is_empty()).then_some(normalised))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_safe_alphabet_only() {
        assert!(validate_user_id("user_42-a.b").is_ok());
        assert_eq!(
            validate_user_id("").unwrap_err().code,
            ErrorCode::InvalidUserId
        );
        assert!(
            validate_user_id("a:b").is_err(),
            "':' would break cache keys"
        );
        assert!(validate_user_id(&"x".repeat(65)).is_err());
        assert!(validate_item_id("tt0114709").is_ok());
        assert!(validate_item_id("a/b").is_err());
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(effective_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(effective_limit(Some(100)).unwrap(), 100);
        assert!(effective_limit(Some(0)).is_err());
        assert!(effective_limit(Some(101)).is_err());
    }

    #[test]
    fn query_text_is_normalised() {
        assert_eq!(
            normalise_query_text(Some("  Space   ADVENTURE ")).unwrap(),
            Some("space adventure".into())
        );
        assert_eq!(normalise_query_text(Some("   ")).unwrap(), None);
        assert!(normalise_query_text(Some(&"a".repeat(513))).is_err());
    }
}

/// A recommendation request after validation and normalisation: what the core ranks with and
/// what the cache key's context hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalisedRequest {
    pub user_id: Option<String>,
    pub limit: u32,
    pub q: Option<String>,
    pub time_of_day: Option<crate::TimeOfDay>,
    pub device: Option<crate::Device>,
    /// Lowercase BCP-47-ish tag with '-' separators, e.g. `en-us`.
    pub locale: Option<String>,
    pub language: Option<String>,
    /// Lowercase, sorted, deduplicated.
    pub exclude_genres: Vec<String>,
    pub max_maturity: Option<crate::Maturity>,
    /// Lowercase ontology genre or theme.
    pub genre: Option<String>,
    /// Lowercase ontology audience filter.
    pub audience: Option<String>,
    /// Release years admitted, both ends included.
    pub years: Option<YearRange>,
}

/// An inclusive range of release years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearRange {
    pub from: u16,
    pub to: u16,
}

impl YearRange {
    /// The earliest and latest years a range may name: a filter's years become one index
    /// label each, so the span stays bounded.
    pub const EARLIEST: u16 = 1800;
    pub const LATEST: u16 = 2200;

    /// The range `year_from..=year_to` asks for, an open end running to the bound.
    pub fn of_query(from: Option<u16>, to: Option<u16>) -> Result<Option<Self>, ValidationError> {
        if from.is_none() && to.is_none() {
            return Ok(None);
        }
        let range = Self {
            from: from.unwrap_or(Self::EARLIEST),
            to: to.unwrap_or(Self::LATEST),
        };
        let in_bounds = |y: u16| (Self::EARLIEST..=Self::LATEST).contains(&y);
        if !in_bounds(range.from) || !in_bounds(range.to) || range.from > range.to {
            return Err(ValidationError {
                code: ErrorCode::InvalidQuery,
                message: format!(
                    "year_from and year_to must be years within {}-{}, year_from not after year_to",
                    Self::EARLIEST,
                    Self::LATEST
                ),
            });
        }
        Ok(Some(range))
    }

    pub fn contains(&self, year: u16) -> bool {
        (self.from..=self.to).contains(&year)
    }
}

fn normalise_tag(field: &'static str, v: Option<&str>) -> Result<Option<String>, ValidationError> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let ok = v.len() <= 35
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(ValidationError {
            code: ErrorCode::InvalidContext,
            message: format!(
                "{field} must be a short tag of letters, digits, '-' or '_' (e.g. 'en-US', 'sci-fi')"
            ),
        });
    }
    Ok(Some(v.to_ascii_lowercase().replace('_', "-")))
}

impl crate::RecommendationQuery {
    /// Validates every field and puts the request in canonical form.
    pub fn normalise(&self) -> Result<NormalisedRequest, ValidationError> {
        if let Some(user) = &self.user_id {
            validate_user_id(user)?;
        }
        let mut exclude_genres = Vec::new();
        for genre in self.exclude_genres.iter().flat_map(|g| g.split(',')) {
            let genre = genre.trim().to_lowercase();
            if genre.is_empty() {
                continue;
            }
            if genre.len() > 40 || exclude_genres.len() >= 32 {
                return Err(ValidationError {
                    code: ErrorCode::InvalidContext,
                    message: "exclude_genres takes at most 32 genres of at most 40 bytes".into(),
                });
            }
            exclude_genres.push(genre);
        }
        exclude_genres.sort();
        exclude_genres.dedup();
        Ok(NormalisedRequest {
            user_id: self.user_id.clone(),
            limit: effective_limit(self.limit)?,
            q: normalise_query_text(self.q.as_deref())?,
            time_of_day: self.time_of_day,
            device: self.device,
            locale: normalise_tag("locale", self.locale.as_deref())?,
            language: normalise_tag("language", self.language.as_deref())?,
            exclude_genres,
            max_maturity: self.max_maturity,
            genre: normalise_tag("genre", self.genre.as_deref())?,
            audience: normalise_tag("audience", self.audience.as_deref())?,
            years: YearRange::of_query(self.year_from, self.year_to)?,
        })
    }
}
