//! The README's error table is the public contract for error codes: it must list exactly the
//! public codes of `ErrorCode`, with the same statuses, so a code cannot be added, renamed or
//! moved to another status without the documentation following.

use std::collections::BTreeMap;

use shared_types::{ErrorCode, Exposure};

const README: &str = include_str!("../../README.md");

/// The rows of the table headed `| code | status | meaning |`: code -> (status, meaning).
fn readme_rows() -> BTreeMap<String, (u16, String)> {
    let mut lines = README
        .lines()
        .skip_while(|l| l.trim() != "| code | status | meaning |")
        .skip(2); // the header and the `|---|` line
    let mut rows = BTreeMap::new();
    for line in lines.by_ref().take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [code, status, meaning] = cells[..] else {
            panic!("README error table row without three cells: {line}");
        };
        let code = code.trim_matches('`').to_string();
        let status = status
            .parse()
            .unwrap_or_else(|_| panic!("bad status in README row: {line}"));
        let previous = rows.insert(code.clone(), (status, meaning.to_string()));
        assert!(previous.is_none(), "{code} is listed twice in the README");
    }
    assert!(
        !rows.is_empty(),
        "README has no `| code | status | meaning |` table"
    );
    rows
}

#[test]
fn the_readme_lists_exactly_the_public_codes_with_their_statuses() {
    let rows = readme_rows();
    let public: BTreeMap<String, u16> = ErrorCode::ALL
        .iter()
        .filter(|c| c.is_public())
        .map(|c| (c.as_str().to_string(), c.status()))
        .collect();
    let documented: BTreeMap<String, u16> =
        rows.iter().map(|(c, (s, _))| (c.clone(), *s)).collect();
    assert_eq!(
        documented, public,
        "README error table (left) differs from ErrorCode's public codes (right)"
    );
    for (code, (_, meaning)) in &rows {
        let edge_only = ErrorCode::parse(code).unwrap().exposure() == Exposure::Edge;
        assert_eq!(
            meaning.starts_with("edge only"),
            edge_only,
            "{code}: the README says `edge only` exactly for the edge's own codes"
        );
    }
}

#[test]
fn internal_codes_stay_out_of_the_readme_table() {
    let rows = readme_rows();
    for code in ErrorCode::ALL.iter().filter(|c| !c.is_public()) {
        assert!(!rows.contains_key(code.as_str()), "{code} is not public");
    }
}
