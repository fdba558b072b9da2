//! Hard filters: constraints a pick must meet whatever its score (maturity, language,
//! excluded genres, the ontology's audience filters and genre/theme expansion).

use shared_types::{ErrorCode, Maturity, NormalisedRequest};

use crate::catalog::CatalogEntry;
use crate::error::EngineError;
use crate::ontology::{Ontology, SemanticFilter};

#[derive(Default, Clone)]
pub(crate) struct HardFilters {
    pub max_maturity: Option<Maturity>,
    pub exclude_genres: Vec<String>,
    pub language: Option<String>,
    /// Ontology audience filter (e.g. family-friendly).
    pub audience: Option<SemanticFilter>,
    /// Requested genre or theme, expanded to every genre under it.
    pub genres_any: Option<Vec<String>>,
}

impl HardFilters {
    /// The request's hard filters, the ontology's included; unknown names are client errors.
    pub fn of_request(ontology: &Ontology, req: &NormalisedRequest) -> Result<Self, EngineError> {
        let audience = match req.audience.as_deref() {
            Some(name) => Some(ontology.filter(name).ok_or_else(|| {
                EngineError::invalid(
                    ErrorCode::UnknownAudience,
                    format!(
                        "unknown audience '{name}'; known: {}",
                        ontology.filter_names().join(", ")
                    ),
                )
            })?),
            None => None,
        };
        let genres_any = match req.genre.as_deref() {
            Some(name) => Some(
                ontology
                    .genres_under(name)
                    .ok_or_else(|| {
                        EngineError::invalid(
                            ErrorCode::UnknownGenre,
                            format!(
                                "unknown genre or theme '{name}'; known: {}",
                                ontology.theme_names().join(", ")
                            ),
                        )
                    })?
                    .to_vec(),
            ),
            None => None,
        };
        Ok(Self {
            max_maturity: req.max_maturity,
            exclude_genres: req.exclude_genres.clone(),
            language: req.language.clone(),
            audience,
            genres_any,
        })
    }

    /// True when the request restricts picks to part of the ontology (so nearby candidates
    /// may all fail and the pool is widened).
    pub fn is_selective(&self) -> bool {
        self.audience.is_some() || self.genres_any.is_some()
    }

    pub fn admits(&self, e: &CatalogEntry) -> bool {
        let maturity_ok = match (self.max_maturity, e.item.maturity) {
            (None, _) => true,
            (Some(max), Some(m)) => m <= max,
            // Strict family mode admits only items rated for everyone.
            (Some(max), None) => max != Maturity::All,
        };
        let language_ok = match (&self.language, &e.item.language) {
            (Some(want), Some(have)) => {
                have.eq_ignore_ascii_case(want)
                    || have.to_lowercase().starts_with(&format!("{want}-"))
            }
            _ => true,
        };
        maturity_ok
            && language_ok
            && !e.genres.iter().any(|g| self.exclude_genres.contains(g))
            && self
                .audience
                .as_ref()
                .is_none_or(|f| f.admits(&e.genres, e.item.maturity))
            && self
                .genres_any
                .as_ref()
                .is_none_or(|wanted| e.genres.iter().any(|g| wanted.contains(g)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pipeline::test_support::{entry, entry_with, unit};

    fn request() -> NormalisedRequest {
        NormalisedRequest {
            user_id: None,
            limit: 10,
            q: None,
            time_of_day: None,
            device: None,
            locale: None,
            language: None,
            exclude_genres: Vec::new(),
            max_maturity: None,
            genre: None,
            audience: None,
        }
    }

    #[test]
    fn maturity_language_and_excluded_genres_are_hard_limits() {
        let v = unit(4, &[0]);
        let filters = HardFilters {
            max_maturity: Some(Maturity::Teen),
            language: Some("en".into()),
            exclude_genres: vec!["horror".into()],
            ..HardFilters::default()
        };
        assert!(filters.admits(&entry("a", &["Drama"], &v)));
        let adult = entry_with("b", &["Drama"], &v, |i| i.maturity = Some(Maturity::Adult));
        assert!(!filters.admits(&adult));
        let regional = entry_with("c", &["Drama"], &v, |i| i.language = Some("en-gb".into()));
        assert!(
            filters.admits(&regional),
            "a regional tag matches its language"
        );
        let french = entry_with("d", &["Drama"], &v, |i| i.language = Some("fr".into()));
        assert!(!filters.admits(&french));
        let english_like = entry_with("e", &["Drama"], &v, |i| i.language = Some("eng".into()));
        assert!(!filters.admits(&english_like), "a prefix is not a language");
        assert!(!filters.admits(&entry("f", &["Horror", "Drama"], &v)));
    }

    #[test]
    fn family_mode_refuses_unrated_items() {
        let v = unit(4, &[0]);
        let unrated = entry_with("a", &["Animation"], &v, |i| i.maturity = None);
        let family = HardFilters {
            max_maturity: Some(Maturity::All),
            ..HardFilters::default()
        };
        assert!(!family.admits(&unrated));
        let teen = HardFilters {
            max_maturity: Some(Maturity::Teen),
            ..HardFilters::default()
        };
        assert!(teen.admits(&unrated));
    }

    #[test]
    fn a_theme_expands_to_the_genres_under_it() {
        let ontology = Ontology::bundled().unwrap();
        let theme = ontology.theme_names().first().cloned().unwrap();
        let genres = ontology.genres_under(theme).unwrap().to_vec();
        let filters = HardFilters::of_request(
            &ontology,
            &NormalisedRequest {
                genre: Some(theme.to_string()),
                ..request()
            },
        )
        .unwrap();
        assert!(filters.is_selective());
        let v = unit(4, &[1]);
        assert!(filters.admits(&entry("in", &[genres[0].as_str()], &v)));
        assert!(!filters.admits(&entry("out", &["no-such-genre"], &v)));
    }

    #[test]
    fn unknown_names_are_client_errors() {
        let ontology = Ontology::bundled().unwrap();
        let bad_genre = NormalisedRequest {
            genre: Some("not-a-genre".into()),
            ..request()
        };
        let Err(EngineError::Invalid { code, .. }) = HardFilters::of_request(&ontology, &bad_genre)
        else {
            panic!("an unknown genre must be refused");
        };
        assert_eq!(code, ErrorCode::UnknownGenre);
        let bad_audience = NormalisedRequest {
            audience: Some("not-an-audience".into()),
            ..request()
        };
        let Err(EngineError::Invalid { code, .. }) =
            HardFilters::of_request(&ontology, &bad_audience)
        else {
            panic!("an unknown audience must be refused");
        };
        assert_eq!(code, ErrorCode::UnknownAudience);
        assert!(!HardFilters::of_request(&ontology, &request())
            .unwrap()
            .is_selective());
    }
}
