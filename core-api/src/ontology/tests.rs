//! Behaviour of the whole module on the shipped file and on small hand-written documents,
//! through the public API only: loading, closures, filters and the errors for broken files.

use std::path::Path;

use shared_types::Maturity;

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
