//! The `ds` binary, run as a user runs it: exit codes, stdout and stderr.

use std::path::Path;
use std::process::{Command, Output};

fn ds(args: &[&str], dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(tests::ds_binary());
    cmd.args(args).env("NO_COLOR", "1");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    cmd.output().expect("ds runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn example(name: &str) -> String {
    tests::root()
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn validate_accepts_the_examples() {
    for name in ["quickstart", "showcase"] {
        let out = ds(&["validate", "-C", &example(name)], None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains("The model is valid"),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn validate_runs_in_the_current_directory_by_default() {
    let out = ds(&["validate"], Some(Path::new(&example("quickstart"))));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

fn invalid_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tests::root().join("tests/data/base")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let team = std::fs::read_to_string(dir.path().join("team.ds.hcl")).unwrap();
    let team = team
        .replace("nullable = false, primary_key = true", "primary_key = true")
        .replace(
            "sink \"crm_db\" \"customers\"",
            "sink \"crm_db\" \"customer\"",
        );
    std::fs::write(dir.path().join("team.ds.hcl"), team).unwrap();
    dir
}

#[test]
fn validate_text_shows_code_place_snippet_and_help() {
    let dir = invalid_model();
    let out = ds(&["validate", "-C", &dir.path().display().to_string()], None);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    insta::assert_snapshot!(text);
}

#[test]
fn validate_json_lists_every_diagnostic_with_its_place() {
    let dir = invalid_model();
    let out = ds(
        &[
            "validate",
            "--format",
            "json",
            "-C",
            &dir.path().display().to_string(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"], 2);
    let diagnostics = report["diagnostics"].as_array().unwrap();
    let brief: Vec<(String, String, u64, u64, u64, u64)> = diagnostics
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["file"].as_str().unwrap().to_string(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["end_line"].as_u64().unwrap(),
                d["end_column"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        [
            (
                "DS0602".to_string(),
                "team.ds.hcl".to_string(),
                16,
                11,
                16,
                59
            ),
            (
                "DS1203".to_string(),
                "team.ds.hcl".to_string(),
                25,
                21,
                25,
                31
            ),
        ]
    );
    for d in diagnostics {
        assert_eq!(d["severity"], "error");
        assert!(d["message"].as_str().unwrap().contains("customer"));
    }
}

#[test]
fn validate_json_of_a_valid_model() {
    let out = ds(
        &["validate", "--format=json", "-C", &example("showcase")],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["warnings"], 1);
    assert_eq!(report["diagnostics"][0]["severity"], "warning");
}

fn one_line_error(out: &Output, expected: &str) {
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(out), "");
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains(expected),
        "{err}"
    );
}

#[test]
fn unreadable_models_get_a_one_line_error() {
    let missing = ds(&["validate", "-C", "/nonexistent/ds-model"], None);
    one_line_error(
        &missing,
        "model directory `/nonexistent/ds-model` does not exist",
    );

    let empty = tempfile::tempdir().unwrap();
    let out = ds(
        &["validate", "-C", &empty.path().display().to_string()],
        None,
    );
    one_line_error(&out, "no model files (`*.ds.hcl`) found under");

    let latin1 = tempfile::tempdir().unwrap();
    std::fs::write(
        latin1.path().join("a.ds.hcl"),
        b"ecosystem \"caf\xe9\" {}\n",
    )
    .unwrap();
    let out = ds(
        &["validate", "-C", &latin1.path().display().to_string()],
        None,
    );
    one_line_error(&out, "is not valid UTF-8 (line 1)");

    let file = latin1.path().join("a.ds.hcl").display().to_string();
    let out = ds(&["validate", "-C", &file], None);
    one_line_error(&out, "is not a directory");
}

#[test]
fn hidden_directories_and_other_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(example("quickstart")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".git/broken.ds.hcl"), "{{{").unwrap();
    std::fs::write(dir.path().join("notes.hcl"), "{{{").unwrap();
    let out = ds(&["validate", "-C", &dir.path().display().to_string()], None);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn help_explains_commands_and_exit_codes() {
    let out = ds(&["--help"], None);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for word in ["validate", "fmt", "-C", "Exit codes"] {
        assert!(text.contains(word), "`ds --help` lacks {word}: {text}");
    }
    let out = ds(&["validate", "--help"], None);
    let text = stdout(&out);
    for word in ["--format", "json", "DSxxxx", "Exit codes"] {
        assert!(
            text.contains(word),
            "`ds validate --help` lacks {word}: {text}"
        );
    }
    let out = ds(&["fmt", "--help"], None);
    assert!(stdout(&out).contains("--check"));
}

const MESSY: &str = "# the team\nteam   \"sales\" \"crm\"{\ndatastore \"crm_db\" {\n    production_status=\"PRODUCTION\" # keep\n  deprecated = false\n\n\n  }\n}\n";
const TIDY: &str = "# the team\nteam \"sales\" \"crm\" {\n  datastore \"crm_db\" {\n    production_status = \"PRODUCTION\" # keep\n    deprecated        = false\n  }\n}\n";

#[test]
fn fmt_check_names_files_and_changes_nothing_then_fmt_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("team.ds.hcl");
    std::fs::write(&path, MESSY).unwrap();
    std::fs::write(dir.path().join("tidy.ds.hcl"), TIDY).unwrap();
    let d = dir.path().display().to_string();

    let out = ds(&["fmt", "--check", "-C", &d], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "team.ds.hcl\n");
    assert!(stderr(&out).contains("run `ds fmt`"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), MESSY);

    let out = ds(&["fmt", "-C", &d], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "team.ds.hcl\n");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), TIDY);

    let out = ds(&["fmt", "--check", "-C", &d], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "");
}

#[test]
fn fmt_leaves_files_with_syntax_errors_alone() {
    let dir = tempfile::tempdir().unwrap();
    let broken = "team \"a\" \"b\" {\n  x =\n";
    std::fs::write(dir.path().join("broken.ds.hcl"), broken).unwrap();
    std::fs::write(dir.path().join("messy.ds.hcl"), MESSY).unwrap();
    let out = ds(&["fmt", "-C", &dir.path().display().to_string()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("error[DS0001]"), "{}", stdout(&out));
    assert!(stdout(&out).contains("broken.ds.hcl:"), "{}", stdout(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("broken.ds.hcl")).unwrap(),
        broken
    );
    // The well-formed file is still formatted.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("messy.ds.hcl")).unwrap(),
        TIDY
    );
}

#[test]
fn examples_are_in_canonical_layout() {
    for name in ["quickstart", "showcase"] {
        let out = ds(&["fmt", "--check", "-C", &example(name)], None);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stdout(&out));
    }
}
