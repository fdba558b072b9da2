//! Why an ontology file was refused: one error type whose messages name the file and, where
//! there is one, the offending class, so an operator can fix the file without reading code.

use std::path::PathBuf;

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
