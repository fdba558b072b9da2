//! Named audience filters (e.g. "family-friendly"): the part of the ontology consulted on the
//! hot path, kept apart so that checking an item is visibly just a hash look-up per genre.

use std::collections::HashSet;
use std::sync::Arc;

use shared_types::Maturity;

/// A named audience filter (e.g. "family-friendly"). Cloning is a reference-count increment.
#[derive(Debug, Clone)]
pub struct SemanticFilter(Arc<FilterSpec>);

#[derive(Debug)]
struct FilterSpec {
    name: String,
    max_maturity: Option<Maturity>,
    /// Lowercase catalogue genres disjoint with the filter's class.
    excluded: HashSet<String>,
    /// The same, sorted, for display.
    excluded_sorted: Vec<String>,
}

impl SemanticFilter {
    /// A filter named `name` rejecting `excluded_sorted` (lowercase, sorted) and any item
    /// rated above `max_maturity`.
    pub(super) fn new(
        name: String,
        max_maturity: Option<Maturity>,
        excluded_sorted: Vec<String>,
    ) -> Self {
        SemanticFilter(Arc::new(FilterSpec {
            name,
            max_maturity,
            excluded: excluded_sorted.iter().cloned().collect(),
            excluded_sorted,
        }))
    }

    /// The filter's name: its class's `rdfs:label` lowercased, spaces as '-'.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The highest maturity the filter admits (`None`: no cap).
    pub fn max_maturity(&self) -> Option<Maturity> {
        self.0.max_maturity
    }

    /// The lowercase catalogue genres the filter rejects, sorted.
    pub fn excluded_genres(&self) -> &[String] {
        &self.0.excluded_sorted
    }

    /// Whether an item passes the filter.
    ///
    /// `genres_lowercase` are the item's catalogue genres, lowercase (other case still works,
    /// at the cost of an allocation per such genre). The item is rejected if any of them is
    /// disjoint with the filter's class; genres the ontology does not know are ignored.
    ///
    /// `maturity` is compared with the filter's `semrec:maxMaturity`. An item without a rating
    /// is judged on its genres alone, unless the cap is `all`: the catalogue carries no ratings
    /// at all, so rejecting unrated items would reject it whole, while a strict `all` filter
    /// mirrors the engine's strict family mode, which admits only items rated for everyone.
    pub fn admits(&self, genres_lowercase: &[String], maturity: Option<Maturity>) -> bool {
        let spec = &*self.0;
        let maturity_ok = match (spec.max_maturity, maturity) {
            (None, _) => true,
            (Some(max), Some(m)) => m <= max,
            (Some(max), None) => max != Maturity::All,
        };
        maturity_ok
            && !genres_lowercase.iter().any(|g| {
                if g.bytes().any(|b| b.is_ascii_uppercase()) {
                    spec.excluded.contains(&g.to_ascii_lowercase())
                } else {
                    spec.excluded.contains(g.as_str())
                }
            })
    }
}
