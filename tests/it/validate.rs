//! Validation, data-driven: the examples stay valid, the base model is clean, and every case of the invalid
//! corpus (`tests/data/invalid/<case>/`) gives exactly the diagnostics in its snapshot.

use std::collections::BTreeSet;
use std::path::Path;

use planner::diag::{Diagnostics, Severity};
use planner::source::{SourceFile, Sources};

fn model_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".ds.hcl"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The base model with the case's files laid over it (same name replaces; `NO_BASE` drops the base).
fn load_case(case: &Path) -> Sources {
    let own = model_files(case);
    let mut files: Vec<(String, String)> = if case.join("NO_BASE").exists() {
        Vec::new()
    } else {
        model_files(&tests::root().join("tests/data/base"))
            .into_iter()
            .filter(|(name, _)| !own.iter().any(|(n, _)| n == name))
            .collect()
    };
    files.extend(own);
    files.sort();
    Sources::from_files(
        files
            .into_iter()
            .map(|(name, text)| SourceFile::new(name.clone(), name.into(), text))
            .collect(),
    )
}

/// One line per diagnostic: severity, code, file:line:col, message.
fn summary(sources: &Sources, diagnostics: &Diagnostics) -> String {
    diagnostics
        .iter()
        .map(|d| {
            let file = sources.get(d.span.file);
            let (line, column) = file.line_col(d.span.range.start);
            format!(
                "{} {} {}:{line}:{column} {}\n",
                d.severity.as_str(),
                d.code,
                file.name,
                d.message
            )
        })
        .collect()
}

fn check_dir(dir: &Path) -> (Sources, Diagnostics) {
    let sources = planner::source::read_dir(dir).unwrap();
    let (_, diagnostics) = planner::check(&sources);
    (sources, diagnostics)
}

#[test]
fn base_model_is_clean() {
    let sources = load_case(&tests::root().join("tests/data/base"));
    let (_, diagnostics) = planner::check(&sources);
    assert_eq!(summary(&sources, &diagnostics), "");
}

#[test]
fn quickstart_is_valid_without_warnings() {
    let (sources, diagnostics) = check_dir(&tests::root().join("examples/quickstart"));
    assert_eq!(summary(&sources, &diagnostics), "");
}

#[test]
fn showcase_is_valid_with_its_one_deliberate_warning() {
    let (sources, diagnostics) = check_dir(&tests::root().join("examples/showcase"));
    assert_eq!(
        diagnostics.count(Severity::Error),
        0,
        "{}",
        summary(&sources, &diagnostics)
    );
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["DS1302"], "{}", summary(&sources, &diagnostics));
}

fn corpus_cases() -> Vec<std::path::PathBuf> {
    let mut cases: Vec<_> = std::fs::read_dir(tests::root().join("tests/data/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

#[test]
fn invalid_corpus_gives_the_expected_diagnostics() {
    for case in corpus_cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let sources = load_case(&case);
        let (_, diagnostics) = planner::check(&sources);
        assert!(
            diagnostics.has_errors() || name.starts_with("warn_"),
            "case {name} is valid: every case must show a problem"
        );
        insta::assert_snapshot!(name, summary(&sources, &diagnostics));
    }
}

#[test]
fn invalid_corpus_covers_every_code() {
    let mut seen = BTreeSet::new();
    for case in corpus_cases() {
        let sources = load_case(&case);
        let (_, diagnostics) = planner::check(&sources);
        seen.extend(diagnostics.iter().map(|d| d.code));
    }
    let missing: Vec<&str> = planner::codes::ALL
        .iter()
        .map(|c| c.code)
        .filter(|c| !seen.contains(c))
        .collect();
    assert!(missing.is_empty(), "no corpus case produces {missing:?}");
}

#[test]
fn docs_list_every_code() {
    let docs = std::fs::read_to_string(tests::root().join("docs/diagnostics.md")).unwrap();
    for code in planner::codes::ALL {
        assert!(
            docs.contains(&format!("`{}`", code.code)),
            "docs/diagnostics.md does not describe {}",
            code.code
        );
    }
}
