//! The file format: reads OWL/XML with `horned-owl`, accepts only the small subset of OWL the
//! module gives meaning to (named classes, `SubClassOf`, `EquivalentClasses`,
//! `DisjointClasses`, labels and our two annotation properties), rejects the rest with an
//! error naming it, and assembles the checked [`Ontology`].

use std::collections::HashMap;
use std::io::BufReader;
use std::path::Path;

use horned_owl::io::owx::reader::read_to_stream;
use horned_owl::io::{ParserConfiguration, StreamComponent};
use horned_owl::model::{
    AnnotatedComponent, AnnotationSubject, AnnotationValue, Build, ClassExpression, Component,
    Kinded, RcStr,
};
use shared_types::Maturity;

use super::closure::{inherited_disjointness, subclass_closure, unsatisfiable};
use super::error::OntologyError;
use super::filters::SemanticFilter;
use super::{
    local_name, normalise, ClassInfo, Ontology, AUDIENCE_FILTER_IRI, BUNDLED_OWL, GENRE_ROOT_IRI,
    MAX_MATURITY_IRI,
};

const RDFS_LABEL: &str = "http://www.w3.org/2000/01/rdf-schema#label";
const BUNDLED_ORIGIN: &str = "bundled data/ontology/genres.owl";

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

        let subs = subclass_closure(&self.supers);
        let disjoint = inherited_disjointness(&subs, &self.disjoint_sets);
        if let Some((c, a, b)) = unsatisfiable(&subs, &disjoint, &self.disjoint_sets) {
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
            let filter = SemanticFilter::new(name.clone(), self.max_maturity[c], excluded_sorted);
            filters.insert(name, filter);
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
