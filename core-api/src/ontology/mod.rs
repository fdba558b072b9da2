//! The semantic (ontology) filter's domain: a genre/theme ontology kept as an OWL 2 file
//! (`data/ontology/genres.owl`, OWL/XML syntax) and read with `horned-owl`.
//!
//! The file holds three kinds of named classes:
//! * **catalogue genres**: every class below `g:Genre` (directly or through a parent genre,
//!   e.g. Film-Noir ⊑ Crime). Its `rdfs:label` is the catalogue's genre string ("Sci-Fi").
//! * **umbrella themes** (Suspense, Speculative, Mature, ...): classes that group genres with
//!   `SubClassOf`; a request for a theme or genre matches every genre below it.
//! * **audience filters**: classes annotated `semrec:audienceFilter "true"` (FamilyFriendly),
//!   defined by `DisjointClasses` axioms and an optional `semrec:maxMaturity`.
//!
//! Everything is computed once at load: the reflexive-transitive subclass closure and the
//! inherited disjointness as bitsets, each theme's genre list, and each filter's set of
//! excluded genre strings. Queries afterwards are hash look-ups and bit tests;
//! [`SemanticFilter::admits`] does one hash look-up per item genre and allocates nothing
//! (for lowercase input).
//!
//! Semantics, kept deliberately small (no reasoner):
//! * `SubClassOf(A B)` with named classes; `EquivalentClasses` counts as mutual `SubClassOf`.
//!   A cycle of `SubClassOf` is legal OWL and simply makes its members equivalent: the closure
//!   is a graph search with a visited set, so it terminates.
//! * `DisjointClasses(A B ...)` is inherited downwards: every subclass of A is disjoint with
//!   every subclass of B. A class that ends up disjoint with itself (a subclass of two disjoint
//!   classes) is unsatisfiable and rejected at load.
//! * Anything this module would otherwise silently ignore (class expressions, imports,
//!   `DisjointUnion`, property and individual axioms) is rejected with an error instead.
//!
//! Names are matched case-insensitively against a class's `rdfs:label` (spaces may be written
//! as '-': "factual-content") and its IRI's local name ("FactualContent").
//!
//! Layout: this file holds the loaded [`Ontology`] and its queries; `parse` reads and checks
//! the file, `closure` computes the subclass and disjointness closures, `filters` holds the
//! audience filters applied per item, and `error` the load errors.

mod closure;
mod error;
mod filters;
mod parse;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use closure::BitSet;
pub use error::OntologyError;
pub use filters::SemanticFilter;

/// The ontology shipped with the repository (`data/ontology/genres.owl`).
pub const BUNDLED_OWL: &str = include_str!("../../../data/ontology/genres.owl");

/// IRI of the class whose subclasses are the catalogue genres.
pub const GENRE_ROOT_IRI: &str = "http://semrec.example.org/ontology/genres#Genre";
/// Annotation property marking a class as a named audience filter (value `"true"`).
pub const AUDIENCE_FILTER_IRI: &str = "http://semrec.example.org/ontology/vocab#audienceFilter";
/// Annotation property giving an audience filter's highest admitted [`Maturity`](shared_types::Maturity).
pub const MAX_MATURITY_IRI: &str = "http://semrec.example.org/ontology/vocab#maxMaturity";

/// A loaded genre/theme ontology with its closures precomputed. Cheap to share (`Arc` it);
/// immutable after load.
#[derive(Debug, Clone)]
pub struct Ontology {
    /// Per class (by index): IRI, label, canonical name.
    classes: Vec<ClassInfo>,
    /// Normalised name (see [`normalise`]) -> class index.
    by_name: HashMap<String, usize>,
    /// `subs[c]`: c and all its subclasses, transitively.
    subs: Vec<BitSet>,
    /// `disjoint[c]`: every class disjoint with c (inherited down both sides).
    disjoint: Vec<BitSet>,
    /// `genres[c]`: sorted lowercase catalogue labels of the genres in `subs[c]`.
    genres: Vec<Box<[String]>>,
    /// Canonical filter name -> filter.
    filters: HashMap<String, SemanticFilter>,
}

#[derive(Debug, Clone)]
struct ClassInfo {
    iri: String,
    label: Option<String>,
    /// `rdfs:label` (or the local name) lowercased, spaces as '-'.
    canonical: String,
}

impl Ontology {
    /// The lowercase catalogue genres of `genre_or_theme` and all its subclasses, sorted.
    /// `None` if the name is neither a genre nor a theme (unknown, or a class under which no
    /// catalogue genre falls, such as an audience filter).
    pub fn genres_under(&self, genre_or_theme: &str) -> Option<&[String]> {
        let c = self.class_index(genre_or_theme)?;
        let genres = &self.genres[c];
        (!genres.is_empty()).then_some(&**genres)
    }

    /// Whether `a` is `b` or a (transitive) subclass of it. False if either name is unknown.
    pub fn is_subclass_of(&self, a: &str, b: &str) -> bool {
        match (self.class_index(a), self.class_index(b)) {
            (Some(a), Some(b)) => self.subs[b].contains(a),
            _ => false,
        }
    }

    /// Whether `a` and `b` are disjoint, directly or because they are subclasses of disjoint
    /// classes. False if either name is unknown.
    pub fn are_disjoint(&self, a: &str, b: &str) -> bool {
        match (self.class_index(a), self.class_index(b)) {
            (Some(a), Some(b)) => self.disjoint[a].contains(b),
            _ => false,
        }
    }

    /// The named audience filter, e.g. "family-friendly" (case-insensitive). `None` if there
    /// is no such filter.
    pub fn filter(&self, name: &str) -> Option<SemanticFilter> {
        let c = self.class_index(name)?;
        self.filters.get(&self.classes[c].canonical).cloned()
    }

    /// The canonical names [`genres_under`](Self::genres_under) accepts, sorted (for error
    /// messages listing what is valid).
    pub fn theme_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = (0..self.classes.len())
            .filter(|&c| !self.genres[c].is_empty())
            .map(|c| self.classes[c].canonical.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// The names [`filter`](Self::filter) accepts, sorted.
    pub fn filter_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.filters.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    fn class_index(&self, name: &str) -> Option<usize> {
        // Names from requests are usually already normal: look them up without allocating.
        let normal = !name.is_empty()
            && !name
                .bytes()
                .any(|b| b.is_ascii_uppercase() || b.is_ascii_whitespace() || !b.is_ascii());
        if normal {
            self.by_name.get(name).copied()
        } else {
            self.by_name.get(&normalise(name)).copied()
        }
    }
}

/// Lookup key of a name: trimmed, lowercase, spaces as '-'.
fn normalise(name: &str) -> String {
    name.trim().to_lowercase().replace(' ', "-")
}

fn local_name(iri: &str) -> &str {
    iri.rsplit(['#', '/']).next().unwrap_or(iri)
}

impl fmt::Display for Ontology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ontology of {} classes ({} themes and genres, filters: {})",
            self.classes.len(),
            self.theme_names().len(),
            self.filter_names().join(", ")
        )
    }
}
