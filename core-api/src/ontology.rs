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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use horned_owl::io::owx::reader::read_to_stream;
use horned_owl::io::{ParserConfiguration, StreamComponent};
use horned_owl::model::{
    AnnotatedComponent, AnnotationSubject, AnnotationValue, Build, ClassExpression, Component,
    Kinded, RcStr,
};
use shared_types::Maturity;

/// The ontology shipped with the repository (`data/ontology/genres.owl`).
pub const BUNDLED_OWL: &str = include_str!("../../data/ontology/genres.owl");

/// IRI of the class whose subclasses are the catalogue genres.
pub const GENRE_ROOT_IRI: &str = "http://semrec.example.org/ontology/genres#Genre";
/// Annotation property marking a class as a named audience filter (value `"true"`).
pub const AUDIENCE_FILTER_IRI: &str = "http://semrec.example.org/ontology/vocab#audienceFilter";
/// Annotation property giving an audience filter's highest admitted [`Maturity`].
pub const MAX_MATURITY_IRI: &str = "http://semrec.example.org/ontology/vocab#maxMaturity";

const RDFS_LABEL: &str = "http://www.w3.org/2000/01/rdf-schema#label";
const BUNDLED_ORIGIN: &str = "bundled data/ontology/genres.owl";

/// Why an ontology could not be loaded. Every message names the file and, where there is one,
/// the offending class.
#[derive(Debug, thiserror::Error)]
pub enum OntologyError {
    #[error("cannot read ontology file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse ontology {origin} as OWL/XML: {message}")]
    Parse { origin: String, message: String },
    #[error(
        "ontology {origin} declares no class; it must be OWL/XML (an <Ontology> document \
         in the OWL namespace), not RDF/XML or Turtle"
    )]
    Empty { origin: String },
    #[error(
        "ontology {origin}: {axiom} refers to class <{iri}>, which is not declared \
         (add <Declaration><Class IRI=\"{iri}\"/></Declaration>)"
    )]
    UnknownClass {
        origin: String,
        axiom: &'static str,
        iri: String,
    },
    #[error(
        "ontology {origin}: {axiom} uses a class expression ({expression}); \
         only named classes are supported"
    )]
    UnsupportedExpression {
        origin: String,
        axiom: &'static str,
        expression: String,
    },
    #[error("ontology {origin}: {kind} axioms are not supported by the genre ontology loader")]
    UnsupportedAxiom { origin: String, kind: String },
    #[error(
        "ontology {origin}: class <{iri}> has more than one rdfs:label ({first:?}, {second:?})"
    )]
    DuplicateLabel {
        origin: String,
        iri: String,
        first: String,
        second: String,
    },
    #[error("ontology {origin}: the name {name:?} refers to both <{first}> and <{second}>")]
    DuplicateName {
        origin: String,
        name: String,
        first: String,
        second: String,
    },
    #[error("ontology {origin}: class <{iri}> has {property} {value:?}; expected {expected}")]
    InvalidAnnotation {
        origin: String,
        iri: String,
        property: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "ontology {origin}: class <{iri}> is unsatisfiable: it is a subclass of both <{a}> \
         and <{b}>, which are disjoint"
    )]
    Unsatisfiable {
        origin: String,
        iri: String,
        a: String,
        b: String,
    },
}

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

impl Ontology {
    /// Loads and checks an OWL/XML ontology file.
    pub fn load(path: &Path) -> Result<Ontology, OntologyError> {
        let file = std::fs::File::open(path).map_err(|source| OntologyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(BufReader::new(file), &path.display().to_string())
    }

    /// The ontology shipped with the repository, compiled into the binary.
    pub fn bundled() -> Result<Ontology, OntologyError> {
        Self::parse(BUNDLED_OWL, BUNDLED_ORIGIN)
    }

    /// Parses OWL/XML text; `origin` names it in error messages.
    pub fn parse(owl_xml: &str, origin: &str) -> Result<Ontology, OntologyError> {
        Self::from_reader(owl_xml.as_bytes(), origin)
    }

    fn from_reader<R: std::io::BufRead>(reader: R, origin: &str) -> Result<Self, OntologyError> {
        let build: Build<RcStr> = Build::new();
        let mut components = Vec::new();
        for item in read_to_stream(reader, ParserConfiguration::new(&build)) {
            match item {
                Ok(StreamComponent::Component(c)) => components.push(c),
                Ok(StreamComponent::Prefix(..)) => {}
                Err(e) => {
                    return Err(OntologyError::Parse {
                        origin: origin.to_string(),
                        message: e.to_string(),
                    })
                }
            }
        }
        Builder::new(origin).build(&components)
    }

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

/// Collects the axioms of one parse and turns them into an [`Ontology`].
struct Builder<'o> {
    origin: &'o str,
    index: HashMap<String, usize>,
    iris: Vec<String>,
    labels: Vec<Option<String>>,
    /// Direct superclasses, by index.
    supers: Vec<Vec<usize>>,
    disjoint_sets: Vec<Vec<usize>>,
    audience_filter: Vec<bool>,
    max_maturity: Vec<Option<Maturity>>,
}

impl<'o> Builder<'o> {
    fn new(origin: &'o str) -> Self {
        Self {
            origin,
            index: HashMap::new(),
            iris: Vec::new(),
            labels: Vec::new(),
            supers: Vec::new(),
            disjoint_sets: Vec::new(),
            audience_filter: Vec::new(),
            max_maturity: Vec::new(),
        }
    }

    fn origin(&self) -> String {
        self.origin.to_string()
    }

    fn build(
        mut self,
        components: &[AnnotatedComponent<RcStr>],
    ) -> Result<Ontology, OntologyError> {
        // Declarations first: axioms may precede the declaration of what they mention.
        for ac in components {
            if let Component::DeclareClass(d) = &ac.component {
                let iri = String::from(&d.0);
                if !self.index.contains_key(&iri) {
                    self.index.insert(iri.clone(), self.iris.len());
                    self.iris.push(iri);
                }
            }
        }
        if self.iris.is_empty() {
            return Err(OntologyError::Empty {
                origin: self.origin(),
            });
        }
        let n = self.iris.len();
        self.labels = vec![None; n];
        self.supers = vec![Vec::new(); n];
        self.audience_filter = vec![false; n];
        self.max_maturity = vec![None; n];

        for ac in components {
            self.component(&ac.component)?;
        }
        self.finish()
    }

    fn component(&mut self, component: &Component<RcStr>) -> Result<(), OntologyError> {
        match component {
            Component::SubClassOf(ax) => {
                let sub = self.named(&ax.sub, "SubClassOf")?;
                let sup = self.named(&ax.sup, "SubClassOf")?;
                self.supers[sub].push(sup);
            }
            Component::EquivalentClasses(ax) => {
                let members = self.all_named(&ax.0, "EquivalentClasses")?;
                for pair in members.windows(2) {
                    self.supers[pair[0]].push(pair[1]);
                    self.supers[pair[1]].push(pair[0]);
                }
            }
            Component::DisjointClasses(ax) => {
                let members = self.all_named(&ax.0, "DisjointClasses")?;
                self.disjoint_sets.push(members);
            }
            Component::AnnotationAssertion(ax) => self.annotation(&ax.subject, &ax.ann)?,
            // Harmless: ontology header, declarations of non-class entities, annotations.
            Component::OntologyID(_)
            | Component::DocIRI(_)
            | Component::OntologyAnnotation(_)
            | Component::DeclareClass(_)
            | Component::DeclareAnnotationProperty(_)
            | Component::DeclareDatatype(_)
            | Component::SubAnnotationPropertyOf(_)
            | Component::AnnotationPropertyDomain(_)
            | Component::AnnotationPropertyRange(_) => {}
            other => {
                return Err(OntologyError::UnsupportedAxiom {
                    origin: self.origin(),
                    kind: format!("{:?}", other.kind())
                        .trim_start_matches("ComponentKind::")
                        .to_string(),
                })
            }
        }
        Ok(())
    }

    fn annotation(
        &mut self,
        subject: &AnnotationSubject<RcStr>,
        ann: &horned_owl::model::Annotation<RcStr>,
    ) -> Result<(), OntologyError> {
        let AnnotationSubject::IRI(subject) = subject else {
            return Ok(());
        };
        let subject = subject.to_string();
        let property = ann.ap.0.to_string();
        let ours = property == AUDIENCE_FILTER_IRI || property == MAX_MATURITY_IRI;
        let Some(&c) = self.index.get(&subject) else {
            // Labels and comments on annotation properties or the ontology are fine; our own
            // properties only make sense on a declared class.
            return if ours {
                Err(OntologyError::UnknownClass {
                    origin: self.origin(),
                    axiom: "AnnotationAssertion",
                    iri: subject,
                })
            } else {
                Ok(())
            };
        };
        let value = match &ann.av {
            AnnotationValue::Literal(l) => l.literal().trim().to_string(),
            AnnotationValue::IRI(iri) => iri.to_string(),
            AnnotationValue::AnonymousIndividual(_) => String::new(),
        };
        match property.as_str() {
            RDFS_LABEL => {
                if let Some(first) = &self.labels[c] {
                    return Err(OntologyError::DuplicateLabel {
                        origin: self.origin(),
                        iri: subject,
                        first: first.clone(),
                        second: value,
                    });
                }
                self.labels[c] = Some(value);
            }
            AUDIENCE_FILTER_IRI => {
                self.audience_filter[c] = match value.to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(OntologyError::InvalidAnnotation {
                            origin: self.origin(),
                            iri: subject,
                            property: "semrec:audienceFilter",
                            value,
                            expected: "\"true\" or \"false\"",
                        })
                    }
                }
            }
            MAX_MATURITY_IRI => {
                let level = [Maturity::All, Maturity::Teen, Maturity::Adult]
                    .into_iter()
                    .find(|m| m.as_str().eq_ignore_ascii_case(&value));
                match level {
                    Some(m) => self.max_maturity[c] = Some(m),
                    None => {
                        return Err(OntologyError::InvalidAnnotation {
                            origin: self.origin(),
                            iri: subject,
                            property: "semrec:maxMaturity",
                            value,
                            expected: "\"all\", \"teen\" or \"adult\"",
                        })
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn named(
        &self,
        ce: &ClassExpression<RcStr>,
        axiom: &'static str,
    ) -> Result<usize, OntologyError> {
        match ce {
            ClassExpression::Class(c) => {
                let iri = String::from(&c.0);
                self.index
                    .get(&iri)
                    .copied()
                    .ok_or_else(|| OntologyError::UnknownClass {
                        origin: self.origin(),
                        axiom,
                        iri,
                    })
            }
            other => Err(OntologyError::UnsupportedExpression {
                origin: self.origin(),
                axiom,
                expression: expression_kind(other),
            }),
        }
    }

    fn all_named(
        &self,
        ces: &[ClassExpression<RcStr>],
        axiom: &'static str,
    ) -> Result<Vec<usize>, OntologyError> {
        ces.iter().map(|ce| self.named(ce, axiom)).collect()
    }

    fn finish(self) -> Result<Ontology, OntologyError> {
        let n = self.iris.len();

        // Reflexive-transitive closure: walk up from every class, marking it in the `subs`
        // of each ancestor. The visited set makes SubClassOf cycles terminate (their members
        // end up in each other's `subs`, i.e. equivalent).
        let mut subs = vec![BitSet::new(n); n];
        let mut seen = BitSet::new(n);
        let mut stack = Vec::new();
        for c in 0..n {
            seen.clear();
            stack.push(c);
            while let Some(x) = stack.pop() {
                if seen.insert(x) {
                    subs[x].insert(c);
                    stack.extend(
                        self.supers[x]
                            .iter()
                            .copied()
                            .filter(|&s| !seen.contains(s)),
                    );
                }
            }
        }

        // Inherited disjointness: each pair of members of a DisjointClasses axiom, and all
        // their subclasses.
        let mut disjoint = vec![BitSet::new(n); n];
        for set in &self.disjoint_sets {
            for (i, &a) in set.iter().enumerate() {
                for &b in &set[i + 1..] {
                    for x in subs[a].iter() {
                        disjoint[x].union_with(&subs[b]);
                    }
                    for y in subs[b].iter() {
                        disjoint[y].union_with(&subs[a]);
                    }
                }
            }
        }
        if let Some(c) = (0..n).find(|&c| disjoint[c].contains(c)) {
            let (a, b) = self
                .disjoint_sets
                .iter()
                .flat_map(|set| {
                    set.iter()
                        .flat_map(move |&a| set.iter().map(move |&b| (a, b)))
                        .filter(|(a, b)| a != b)
                })
                .find(|&(a, b)| subs[a].contains(c) && subs[b].contains(c))
                // A class in a DisjointClasses axiom with itself (or an equivalent class).
                .unwrap_or((c, c));
            return Err(OntologyError::Unsatisfiable {
                origin: self.origin(),
                iri: self.iris[c].clone(),
                a: self.iris[a].clone(),
                b: self.iris[b].clone(),
            });
        }

        let mut classes = Vec::with_capacity(n);
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for c in 0..n {
            let iri = self.iris[c].clone();
            let label = self.labels[c].clone();
            let canonical = normalise(label.as_deref().unwrap_or(local_name(&iri)));
            for key in [canonical.clone(), normalise(local_name(&iri))] {
                if let Some(&other) = by_name.get(&key) {
                    if other != c {
                        return Err(OntologyError::DuplicateName {
                            origin: self.origin(),
                            name: key,
                            first: self.iris[other].clone(),
                            second: iri,
                        });
                    }
                }
                by_name.insert(key, c);
            }
            classes.push(ClassInfo {
                iri,
                label,
                canonical,
            });
        }

        // Catalogue genres: strict subclasses of g:Genre (the root itself is not a genre).
        let root = self.index.get(GENRE_ROOT_IRI).copied();
        let is_genre: Vec<bool> = (0..n)
            .map(|c| root.is_some_and(|r| c != r && subs[r].contains(c)))
            .collect();
        let genre_label = |c: usize| -> String {
            classes[c]
                .label
                .as_deref()
                .unwrap_or(local_name(&classes[c].iri))
                .to_lowercase()
        };
        let genres: Vec<Box<[String]>> = (0..n)
            .map(|c| {
                let mut g: Vec<String> = subs[c]
                    .iter()
                    .filter(|&x| is_genre[x])
                    .map(genre_label)
                    .collect();
                g.sort_unstable();
                g.dedup();
                g.into_boxed_slice()
            })
            .collect();

        let mut filters = HashMap::new();
        for c in 0..n {
            if !self.audience_filter[c] {
                if self.max_maturity[c].is_some() {
                    return Err(OntologyError::InvalidAnnotation {
                        origin: self.origin(),
                        iri: classes[c].iri.clone(),
                        property: "semrec:maxMaturity",
                        value: self.max_maturity[c]
                            .map_or("", Maturity::as_str)
                            .to_string(),
                        expected: "none: it only applies to a class annotated \
                                   semrec:audienceFilter \"true\"",
                    });
                }
                continue;
            }
            let mut excluded_sorted: Vec<String> = disjoint[c]
                .iter()
                .filter(|&x| is_genre[x])
                .map(genre_label)
                .collect();
            excluded_sorted.sort_unstable();
            excluded_sorted.dedup();
            let name = classes[c].canonical.clone();
            let spec = FilterSpec {
                name: name.clone(),
                max_maturity: self.max_maturity[c],
                excluded: excluded_sorted.iter().cloned().collect(),
                excluded_sorted,
            };
            filters.insert(name, SemanticFilter(Arc::new(spec)));
        }

        Ok(Ontology {
            classes,
            by_name,
            subs,
            disjoint,
            genres,
            filters,
        })
    }
}

fn expression_kind(ce: &ClassExpression<RcStr>) -> String {
    let debug = format!("{ce:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("class expression")
        .to_string()
}

/// A fixed-size set of class indices.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BitSet(Box<[u64]>);

impl BitSet {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)].into_boxed_slice())
    }

    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Adds `i`; true if it was not there.
    fn insert(&mut self, i: usize) -> bool {
        let word = &mut self.0[i / 64];
        let bit = 1 << (i % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }

    fn clear(&mut self) {
        self.0.fill(0);
    }

    fn union_with(&mut self, other: &BitSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ontology() -> Ontology {
        Ontology::bundled().expect("the shipped ontology loads")
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// A small OWL/XML document with `body` as its axioms.
    fn owx(body: &str) -> String {
        format!(
            r#"<?xml version="1.0"?>
<Ontology xmlns="http://www.w3.org/2002/07/owl#" ontologyIRI="http://t.example/o">
    <Prefix name="t" IRI="http://t.example/o#"/>
    <Prefix name="rdfs" IRI="http://www.w3.org/2000/01/rdf-schema#"/>
    {body}
</Ontology>"#
        )
    }

    fn declare(names: &[&str]) -> String {
        names
            .iter()
            .map(|n| format!(r#"<Declaration><Class abbreviatedIRI="t:{n}"/></Declaration>"#))
            .collect()
    }

    #[test]
    fn shipped_file_loads_and_knows_every_catalogue_genre() {
        let o = ontology();
        let all = o.genres_under("genre").expect("the genre root is a theme");
        for g in [
            "action",
            "adult",
            "adventure",
            "animation",
            "biography",
            "comedy",
            "crime",
            "documentary",
            "drama",
            "family",
            "fantasy",
            "film-noir",
            "game-show",
            "history",
            "horror",
            "music",
            "musical",
            "mystery",
            "news",
            "reality-tv",
            "romance",
            "sci-fi",
            "short",
            "sport",
            "talk-show",
            "thriller",
            "war",
            "western",
        ] {
            assert!(all.contains(&g.to_string()), "{g} missing from {all:?}");
            assert_eq!(
                o.genres_under(g).map(|s| s.contains(&g.to_string())),
                Some(true)
            );
        }
        assert_eq!(all.len(), 28, "{all:?}");
        assert!(o.to_string().contains("family-friendly"));
    }

    #[test]
    fn genres_under_is_the_transitive_closure() {
        let o = ontology();
        let suspense = o.genres_under("suspense").unwrap();
        for g in ["thriller", "mystery", "horror"] {
            assert!(suspense.contains(&g.to_string()), "{suspense:?}");
        }
        assert!(
            !suspense.contains(&"suspense".to_string()),
            "themes are not genres"
        );
        assert_eq!(
            o.genres_under("crime").unwrap(),
            &strings(&["crime", "film-noir"])
        );
        assert_eq!(
            o.genres_under("Music").unwrap(),
            &strings(&["music", "musical"])
        );
        assert_eq!(o.genres_under("sci-fi").unwrap(), &strings(&["sci-fi"]));
        // Case-insensitive; by label (spaces or '-') or by IRI local name.
        assert_eq!(o.genres_under("SUSPENSE"), Some(suspense));
        let factual = o.genres_under("Factual Content").unwrap();
        assert_eq!(o.genres_under("factual-content"), Some(factual));
        assert_eq!(o.genres_under("FactualContent"), Some(factual));
        assert!(factual.contains(&"biography".to_string()));
        // Film-Noir is Mature through Crime: two levels up.
        assert!(o
            .genres_under("mature")
            .unwrap()
            .contains(&"film-noir".to_string()));
    }

    #[test]
    fn subclass_is_transitive_and_reflexive() {
        let o = ontology();
        assert!(o.is_subclass_of("film-noir", "crime"));
        assert!(o.is_subclass_of("Film-Noir", "mature"));
        assert!(o.is_subclass_of("horror", "horror"));
        assert!(o.is_subclass_of("horror", "suspense"));
        assert!(!o.is_subclass_of("crime", "film-noir"));
        assert!(!o.is_subclass_of("mystery", "mature"));
        assert!(!o.is_subclass_of("nope", "crime"));
    }

    #[test]
    fn disjointness_is_inherited_down_both_sides() {
        let o = ontology();
        assert!(o.are_disjoint("familyfriendly", "mature"));
        assert!(o.are_disjoint("mature", "Family Friendly"), "symmetric");
        assert!(o.are_disjoint("family-friendly", "horror"));
        assert!(
            o.are_disjoint("family-friendly", "film-noir"),
            "two levels down"
        );
        assert!(!o.are_disjoint("family-friendly", "animation"));
        assert!(
            !o.are_disjoint("family-friendly", "suspense"),
            "not upwards"
        );
        assert!(!o.are_disjoint("family-friendly", "mystery"));
        assert!(!o.are_disjoint("horror", "thriller"));
        assert!(!o.are_disjoint("family-friendly", "unknown-genre"));

        // Both sides inherit: a subclass of one side against a subclass of the other.
        let doc = owx(&format!(
            r#"{}
            <SubClassOf><Class abbreviatedIRI="t:A1"/><Class abbreviatedIRI="t:A"/></SubClassOf>
            <SubClassOf><Class abbreviatedIRI="t:A2"/><Class abbreviatedIRI="t:A1"/></SubClassOf>
            <SubClassOf><Class abbreviatedIRI="t:B1"/><Class abbreviatedIRI="t:B"/></SubClassOf>
            <DisjointClasses><Class abbreviatedIRI="t:A"/><Class abbreviatedIRI="t:B"/></DisjointClasses>"#,
            declare(&["A", "A1", "A2", "B", "B1"])
        ));
        let o = Ontology::parse(&doc, "test").unwrap();
        assert!(o.are_disjoint("a2", "b1"));
        assert!(o.are_disjoint("b1", "a2"));
        assert!(!o.are_disjoint("a1", "a2"));
    }

    #[test]
    fn family_friendly_filter() {
        let o = ontology();
        let f = o.filter("family-friendly").expect("shipped filter");
        assert_eq!(f.name(), "family-friendly");
        assert_eq!(f.max_maturity(), Some(Maturity::Teen));
        assert!(o.filter("Family Friendly").is_some());
        assert!(f.excluded_genres().contains(&"film-noir".to_string()));

        assert!(f.admits(&strings(&["animation", "family"]), None));
        assert!(f.admits(&strings(&["animation", "family"]), Some(Maturity::All)));
        assert!(f.admits(&strings(&["comedy", "mystery"]), Some(Maturity::Teen)));
        assert!(
            f.admits(&[], None),
            "no genres, no rating: nothing against it"
        );
        assert!(f.admits(&strings(&["not-in-the-ontology"]), None));

        assert!(!f.admits(&strings(&["horror"]), None));
        assert!(!f.admits(
            &strings(&["animation", "family", "horror"]),
            Some(Maturity::All)
        ));
        assert!(
            !f.admits(&strings(&["comedy", "film-noir"]), None),
            "inherited via Crime"
        );
        assert!(!f.admits(&strings(&["animation", "family"]), Some(Maturity::Adult)));
        assert!(!f.admits(&strings(&["Horror"]), None), "case-robust");
        assert_eq!(o.filter_names(), vec!["family-friendly"]);
    }

    #[test]
    fn a_strict_filter_rejects_unrated_items() {
        let doc = owx(&format!(
            r#"{}
            <AnnotationAssertion><AnnotationProperty IRI="{AUDIENCE_FILTER_IRI}"/><AbbreviatedIRI>t:Toddler</AbbreviatedIRI><Literal>true</Literal></AnnotationAssertion>
            <AnnotationAssertion><AnnotationProperty IRI="{MAX_MATURITY_IRI}"/><AbbreviatedIRI>t:Toddler</AbbreviatedIRI><Literal>all</Literal></AnnotationAssertion>"#,
            declare(&["Toddler"])
        ));
        let o = Ontology::parse(&doc, "test").unwrap();
        let f = o.filter("toddler").unwrap();
        assert!(f.admits(&[], Some(Maturity::All)));
        assert!(!f.admits(&[], None));
        assert!(!f.admits(&[], Some(Maturity::Teen)));
    }

    #[test]
    fn unknown_names_give_none() {
        let o = ontology();
        assert_eq!(o.genres_under("polka"), None);
        assert_eq!(o.genres_under(""), None);
        assert_eq!(
            o.genres_under("family-friendly"),
            None,
            "a filter, not a theme"
        );
        assert!(o.filter("polka").is_none());
        assert!(o.filter("horror").is_none(), "a genre, not a filter");
        let themes = o.theme_names();
        for t in [
            "suspense",
            "speculative",
            "factual-content",
            "mature",
            "sci-fi",
            "genre",
        ] {
            assert!(themes.contains(&t), "{t} not in {themes:?}");
        }
        assert!(!themes.contains(&"family-friendly"));
    }

    #[test]
    fn broken_file_gives_a_clear_error() {
        let path = std::env::temp_dir().join(format!("semrec-ontology-{}.owl", std::process::id()));
        std::fs::write(&path, "<?xml version=\"1.0\"?>\n<Ontology xmlns=\"http://www.w3.org/2002/07/owl#\">\n<Declaration><Class IRI=\"x\"/></Declaration>\n<SubClassOf><Class").unwrap();
        let err = Ontology::load(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(err, OntologyError::Parse { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("cannot parse ontology") && msg.contains("semrec-ontology-"),
            "{msg}"
        );

        let missing = Path::new("/nonexistent/genres.owl");
        let err = Ontology::load(missing).unwrap_err();
        assert!(matches!(err, OntologyError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/genres.owl"), "{err}");
    }

    #[test]
    fn mistakes_in_the_file_are_named() {
        let undeclared = owx(&format!(
            r#"{}<SubClassOf><Class abbreviatedIRI="t:A"/><Class abbreviatedIRI="t:Typo"/></SubClassOf>"#,
            declare(&["A"])
        ));
        let err = Ontology::parse(&undeclared, "test").unwrap_err();
        assert!(matches!(err, OntologyError::UnknownClass { .. }), "{err:?}");
        assert!(err.to_string().contains("http://t.example/o#Typo"), "{err}");

        let expression = owx(&format!(
            r#"{}<SubClassOf><Class abbreviatedIRI="t:A"/><ObjectUnionOf><Class abbreviatedIRI="t:B"/><Class abbreviatedIRI="t:C"/></ObjectUnionOf></SubClassOf>"#,
            declare(&["A", "B", "C"])
        ));
        let err = Ontology::parse(&expression, "test").unwrap_err();
        assert!(
            matches!(err, OntologyError::UnsupportedExpression { .. }),
            "{err:?}"
        );

        let bad_maturity = owx(&format!(
            r#"{}<AnnotationAssertion><AnnotationProperty IRI="{MAX_MATURITY_IRI}"/><AbbreviatedIRI>t:A</AbbreviatedIRI><Literal>pg-13</Literal></AnnotationAssertion>"#,
            declare(&["A"])
        ));
        let err = Ontology::parse(&bad_maturity, "test").unwrap_err();
        assert!(err.to_string().contains("\"pg-13\""), "{err}");

        let unsatisfiable = owx(&format!(
            r#"{}
            <SubClassOf><Class abbreviatedIRI="t:C"/><Class abbreviatedIRI="t:A"/></SubClassOf>
            <SubClassOf><Class abbreviatedIRI="t:C"/><Class abbreviatedIRI="t:B"/></SubClassOf>
            <DisjointClasses><Class abbreviatedIRI="t:A"/><Class abbreviatedIRI="t:B"/></DisjointClasses>"#,
            declare(&["A", "B", "C"])
        ));
        let err = Ontology::parse(&unsatisfiable, "test").unwrap_err();
        assert!(
            matches!(err, OntologyError::Unsatisfiable { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("o#C"), "{err}");

        let not_owx = r#"<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>"#;
        let err = Ontology::parse(not_owx, "test").unwrap_err();
        assert!(
            matches!(
                err,
                OntologyError::Empty { .. } | OntologyError::Parse { .. }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn subclass_cycles_make_equivalent_classes() {
        let doc = owx(&format!(
            r#"{}
            <SubClassOf><Class abbreviatedIRI="t:A"/><Class abbreviatedIRI="t:B"/></SubClassOf>
            <SubClassOf><Class abbreviatedIRI="t:B"/><Class abbreviatedIRI="t:C"/></SubClassOf>
            <SubClassOf><Class abbreviatedIRI="t:C"/><Class abbreviatedIRI="t:A"/></SubClassOf>"#,
            declare(&["A", "B", "C"])
        ));
        let o = Ontology::parse(&doc, "test").unwrap();
        assert!(o.is_subclass_of("a", "c") && o.is_subclass_of("c", "a"));
        assert!(o.is_subclass_of("b", "a"));

        let doc = owx(&format!(
            r#"{}
            <EquivalentClasses><Class abbreviatedIRI="t:A"/><Class abbreviatedIRI="t:B"/></EquivalentClasses>
            <SubClassOf><Class abbreviatedIRI="t:C"/><Class abbreviatedIRI="t:B"/></SubClassOf>"#,
            declare(&["A", "B", "C"])
        ));
        let o = Ontology::parse(&doc, "test").unwrap();
        assert!(o.is_subclass_of("a", "b") && o.is_subclass_of("b", "a"));
        assert!(o.is_subclass_of("c", "a"));
    }

    #[test]
    fn ontology_and_filters_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Ontology>();
        send_sync::<SemanticFilter>();
    }
}
