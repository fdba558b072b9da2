//! Hard filters: constraints a pick must meet whatever its score (maturity, language,
//! excluded genres, the ontology's audience filters and genre/theme expansion, release years).

use shared_types::{ErrorCode, Maturity, NormalisedRequest, YearRange};

use vector_index::Filter;

use crate::catalog::{genre_label, language_label, maturity_label, year_label, CatalogEntry};
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
    /// Release years admitted (items without a year are not).
    pub years: Option<YearRange>,
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
            years: req.years,
        })
    }

    /// The same constraints as [`admits`](Self::admits), over the labels the vector index
    /// keeps (`catalog::index_labels`), so the search itself returns only admitted items.
    pub fn index_filter(&self) -> Filter {
        let mut filter = Filter::default();
        let maturity_cap = |filter: Filter, max: Maturity| {
            let mut allowed: Vec<_> = [Maturity::All, Maturity::Teen, Maturity::Adult]
                .into_iter()
                .filter(|m| *m <= max)
                .map(|m| maturity_label(Some(m)))
                .collect();
            // Strict family mode admits only items rated for everyone.
            if max != Maturity::All {
                allowed.push(maturity_label(None));
            }
            filter.any_of(allowed)
        };
        if let Some(max) = self.max_maturity {
            filter = maturity_cap(filter, max);
        }
        if let Some(want) = &self.language {
            filter = filter.any_of([language_label(Some(want)), language_label(None)]);
        }
        filter = filter.none_of(self.exclude_genres.iter().map(|g| genre_label(g)));
        if let Some(audience) = &self.audience {
            if let Some(max) = audience.max_maturity() {
                filter = maturity_cap(filter, max);
            }
            filter = filter.none_of(audience.excluded_genres().iter().map(|g| genre_label(g)));
        }
        if let Some(wanted) = &self.genres_any {
            filter = filter.any_of(wanted.iter().map(|g| genre_label(g)));
        }
        if let Some(years) = self.years {
            filter = filter.any_of((years.from..=years.to).map(year_label));
        }
        filter
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
            && self
                .years
                .is_none_or(|years| e.item.year.is_some_and(|y| years.contains(y)))
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
            years: None,
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
        assert!(HardFilters::of_request(&ontology, &request())
            .unwrap()
            .index_filter()
            .is_empty());
    }

    /// The index filter and the ranker's check agree on every item: the search returns
    /// exactly what the ranker would have kept.
    #[test]
    fn the_index_filter_admits_what_the_hard_filters_admit() {
        let ontology = Ontology::bundled().unwrap();
        let v = unit(4, &[0]);
        let genre_sets: [&[&str]; 5] = [
            &[],
            &["Drama"],
            &["Horror", "Drama"],
            &["Animation"],
            &["Film-Noir", "Crime"],
        ];
        let maturities = [
            None,
            Some(Maturity::All),
            Some(Maturity::Teen),
            Some(Maturity::Adult),
        ];
        let languages = [None, Some("en"), Some("EN-gb"), Some("eng"), Some("fr")];
        let years = [
            None,
            Some(1950),
            Some(1989),
            Some(1990),
            Some(1999),
            Some(2000),
        ];
        let mut entries = Vec::new();
        for genres in genre_sets {
            for m in maturities {
                for (n, lang) in languages.into_iter().enumerate() {
                    entries.push(entry_with("x", genres, &v, |i| {
                        i.maturity = m;
                        i.language = lang.map(str::to_string);
                        i.year = years[n % years.len()];
                    }));
                }
            }
        }
        for year in years {
            entries.push(entry_with("y", &["Drama"], &v, |i| i.year = year));
        }
        let mut requests = vec![request()];
        for audience in ontology.filter_names() {
            requests.push(NormalisedRequest {
                audience: Some(audience.to_string()),
                ..request()
            });
        }
        for theme in ontology.theme_names().iter().take(4) {
            requests.push(NormalisedRequest {
                genre: Some(theme.to_string()),
                ..request()
            });
        }
        for max in maturities.into_iter().flatten() {
            requests.push(NormalisedRequest {
                max_maturity: Some(max),
                ..request()
            });
        }
        requests.push(NormalisedRequest {
            language: Some("en".into()),
            exclude_genres: vec!["horror".into()],
            max_maturity: Some(Maturity::Teen),
            ..request()
        });
        requests.push(NormalisedRequest {
            language: Some("en-gb".into()),
            ..request()
        });
        for (from, to) in [(1990, 1999), (1800, 1989), (2000, 2200), (1999, 1999)] {
            requests.push(NormalisedRequest {
                years: Some(YearRange { from, to }),
                ..request()
            });
        }
        let mut admitted = 0;
        for req in &requests {
            let filters = HardFilters::of_request(&ontology, req).unwrap();
            let index_filter = filters.index_filter();
            for e in &entries {
                let labels = crate::catalog::index_labels(&e.item);
                assert_eq!(
                    index_filter.admits(&labels),
                    filters.admits(e),
                    "{req:?} on {:?}",
                    e.item
                );
                admitted += usize::from(filters.admits(e));
            }
        }
        assert!(
            admitted > 0 && admitted < requests.len() * entries.len(),
            "both outcomes are covered"
        );
    }
}
