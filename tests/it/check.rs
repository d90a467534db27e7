//! `ds check` on git repositories built commit by commit: who may change what (ownership regions), backwards
//! compatibility, consumers; the verdicts in text and markdown; bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A model repository: `tests/data/base` plus a second team (`shop`) in the `sales` zone, committed and
/// tagged `base`.
struct Repo {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

const SHOP: &str = r#"team "sales" "shop" {
  datastore "shop_db" {
    capture "sql_snapshot" {
      credential = "shop_src"
      trigger    = { interval = "5m" }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "shop"
        }
      }
    }
    dataset "products" {
      table {
        columns = {
          sku   = { type = "varchar(32)", nullable = false, primary_key = true }
          name  = { type = "varchar(200)" }
          price = { type = "decimal(10,2)" }
        }
      }
    }
    dataset "legacy" {
      table {
        columns = {
          id = { type = "integer", nullable = false, primary_key = true }
        }
      }
    }
  }
}
"#;

impl Repo {
    fn new() -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model-repo");
        std::fs::create_dir_all(dir.join("model")).unwrap();
        for entry in std::fs::read_dir(tests::root().join("tests/data/base")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join("model").join(path.file_name().unwrap())).unwrap();
        }
        let repo = Repo { _tmp: tmp, dir };
        repo.write("shop.ds.hcl", SHOP);
        repo.edit(
            "zone.ds.hcl",
            "  team_declaration \"crm\"",
            "  team_declaration \"shop\" { owning_repo = { repo = \"acme/shop\", branch = \"main\" } }\n  team_declaration \"crm\"",
        );
        repo.git(&["init", "-q", "-b", "main"]);
        repo.commit("base");
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=ds tests",
                "-c",
                "user.email=tests@ds.invalid",
            ])
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn model(&self) -> PathBuf {
        self.dir.join("model")
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.model().join(file), text).unwrap();
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.model().join(file);
        let now = std::fs::read_to_string(&path).unwrap();
        assert!(now.contains(from), "{file} has no `{from}`");
        std::fs::write(&path, now.replacen(from, to, 1)).unwrap();
    }

    /// Commits everything and tags the commit `tag`.
    fn commit(&self, tag: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", tag]);
        self.git(&["tag", tag]);
    }

    /// `ds check -C <repo>/model --base <base> --head <head> --actor <actor> [extra]`.
    fn check(&self, base: &str, head: &str, actor: &str, extra: &[&str]) -> Output {
        ds(
            &self.model(),
            &["check", "--base", base, "--head", head, "--actor", actor],
            extra,
        )
    }
}

fn ds(model: &Path, args: &[&str], extra: &[&str]) -> Output {
    Command::new(tests::ds_binary())
        .args(args)
        .args(extra)
        .arg("-C")
        .arg(model)
        .env("NO_COLOR", "1")
        .env_remove("CI")
        .env_remove("GITHUB_EVENT_PATH")
        .env_remove("GITHUB_REPOSITORY")
        .output()
        .expect("ds runs")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Asserts the exit code and returns stdout.
fn verdict(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_team_edits_its_own_store_but_not_another_teams_dataset() {
    let repo = Repo::new();
    repo.edit(
        "team.ds.hcl",
        "email = { type = \"varchar(200)\" }",
        "email = { type = \"varchar(200)\" }\n          phone = { type = \"varchar(40)\" }",
    );
    repo.commit("crm-adds-phone");
    let out = verdict(
        &repo.check("base", "crm-adds-phone", "acme/crm@main", &[]),
        0,
    );
    assert!(out.contains("~ team sales/crm"), "{out}");
    assert!(out.contains("Allowed"), "{out}");
    insta::assert_snapshot!("own_store_allowed_text", out);

    // The same edit made from the shop team's repo: refused, naming the region's owner.
    let out = repo.check("base", "crm-adds-phone", "acme/shop@main", &[]);
    let out = verdict(&out, 3);
    assert!(out.contains("owned by acme/crm@main"), "{out}");
    insta::assert_snapshot!("other_teams_dataset_refused_text", out);
    let md = verdict(
        &repo.check(
            "base",
            "crm-adds-phone",
            "acme/shop@main",
            &["--format", "markdown"],
        ),
        3,
    );
    insta::assert_snapshot!("other_teams_dataset_refused_markdown", md);
    let json = verdict(
        &repo.check(
            "base",
            "crm-adds-phone",
            "acme/shop@main",
            &["--format", "json"],
        ),
        3,
    );
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["verdict"], "refused");
    assert_eq!(json["findings"][0]["rule"], "ownership");
    assert_eq!(json["findings"][0]["owner"], "acme/crm@main");
    assert_eq!(json["findings"][0]["object"], "dataset crm_db.customers");
    assert_eq!(json["findings"][0]["at"], "team.ds.hcl:13");
    // A branch of the owner's repo other than the owning one does not own it either.
    verdict(
        &repo.check("base", "crm-adds-phone", "acme/crm@feature", &[]),
        3,
    );
}

#[test]
fn a_zone_is_declared_by_the_ecosystem_then_defined_by_its_own_repo() {
    let repo = Repo::new();
    repo.edit(
        "ecosystem.ds.hcl",
        "  zone_declaration \"sales\"",
        "  zone_declaration \"ops\" { owning_repo = { repo = \"acme/ops\", branch = \"main\" } }\n  zone_declaration \"sales\"",
    );
    repo.commit("declared");
    let out = verdict(&repo.check("base", "declared", "acme/eco@main", &[]), 0);
    assert!(out.contains("~ ecosystem"), "{out}");
    // The zone's repo may not declare it itself.
    verdict(&repo.check("base", "declared", "acme/ops@main", &[]), 3);
    repo.write(
        "ops.ds.hcl",
        "zone \"ops\" {\n  documentation { text = \"Operations.\" }\n}\n",
    );
    repo.commit("defined");
    let out = verdict(&repo.check("declared", "defined", "acme/ops@main", &[]), 0);
    assert!(out.contains("+ zone ops"), "{out}");
    assert!(out.contains("owned by acme/ops@main"), "{out}");
    // Nor may the ecosystem's repo define it.
    verdict(&repo.check("declared", "defined", "acme/eco@main", &[]), 3);
    // Removal: the definition first (its own repo), then the declaration (the ecosystem's).
    std::fs::remove_file(repo.model().join("ops.ds.hcl")).unwrap();
    repo.commit("undefined");
    verdict(&repo.check("defined", "undefined", "acme/ops@main", &[]), 0);
}

#[test]
fn a_zones_repo_may_not_edit_a_teams_workspace() {
    let repo = Repo::new();
    repo.edit(
        "team.ds.hcl",
        "  workspace \"reports\" {",
        "  workspace \"reports\" {\n    priority = \"HIGH\"",
    );
    repo.commit("priority");
    let out = verdict(&repo.check("base", "priority", "acme/sales@main", &[]), 3);
    assert!(
        out.contains("workspace reports (in team sales/crm) was changed by acme/sales@main"),
        "{out}"
    );
    verdict(&repo.check("base", "priority", "acme/crm@main", &[]), 0);
}

#[test]
fn column_changes_widen_only() {
    let repo = Repo::new();
    let step = |tag: &str, from: &str, to: &str| {
        repo.git(&["checkout", "-q", "base", "--", "."]);
        repo.edit("shop.ds.hcl", from, to);
        repo.commit(tag);
        repo.check("base", tag, "acme/shop@main", &[])
    };
    let name = "name  = { type = \"varchar(200)\" }";
    verdict(
        &step("widened", name, "name  = { type = \"varchar(400)\" }"),
        0,
    );
    let out = verdict(
        &step("narrowed", name, "name  = { type = \"varchar(100)\" }"),
        3,
    );
    assert!(
        out.contains("column shop_db.products.name: varchar(200) → varchar(100) is not a widening"),
        "{out}"
    );
    insta::assert_snapshot!("narrowed_text", out);
    let out = verdict(
        &step(
            "required",
            name,
            "name  = { type = \"varchar(200)\", nullable = false }",
        ),
        3,
    );
    assert!(
        out.contains("column shop_db.products.name became non-nullable"),
        "{out}"
    );
    let price = "price = { type = \"decimal(10,2)\" }";
    verdict(
        &step(
            "added",
            price,
            &format!("{price}\n          color = {{ type = \"text\" }}"),
        ),
        0,
    );
    let out = verdict(
        &step(
            "added-required",
            price,
            &format!("{price}\n          color = {{ type = \"text\", nullable = false }}"),
        ),
        3,
    );
    assert!(
        out.contains("column shop_db.products.color is new and not nullable"),
        "{out}"
    );
    let out = verdict(
        &step(
            "rekeyed",
            "name  = { type = \"varchar(200)\" }",
            "name  = { type = \"varchar(200)\", nullable = false, primary_key = true }",
        ),
        3,
    );
    assert!(
        out.contains("dataset shop_db.products: the primary key changed from (sku) to (sku, name)"),
        "{out}"
    );
    let out = verdict(&step("dropped", &format!("\n          {price}"), ""), 3);
    assert!(
        out.contains("column shop_db.products.price was removed"),
        "{out}"
    );
}

#[test]
fn datasets_go_deprecated_first_and_never_from_under_a_consumer() {
    let repo = Repo::new();
    // A new dataset in an existing store: always allowed.
    repo.edit(
        "shop.ds.hcl",
        "    dataset \"legacy\" {",
        "    dataset \"stock\" {\n      table {\n        columns = {\n          sku = { type = \"varchar(32)\", nullable = false, primary_key = true }\n        }\n      }\n    }\n    dataset \"legacy\" {",
    );
    repo.commit("new-dataset");
    verdict(&repo.check("base", "new-dataset", "acme/shop@main", &[]), 0);

    // Removed without being deprecated: refused.
    let legacy_start = "    dataset \"legacy\" {\n      table {\n        columns = {\n          id = { type = \"integer\", nullable = false, primary_key = true }\n        }\n      }\n    }\n";
    repo.edit("shop.ds.hcl", legacy_start, "");
    repo.commit("removed-early");
    let out = verdict(
        &repo.check("new-dataset", "removed-early", "acme/shop@main", &[]),
        3,
    );
    assert!(
        out.contains("dataset shop_db.legacy was removed without being deprecated first"),
        "{out}"
    );
    assert!(out.contains("shop.ds.hcl:"), "{out}");
    assert!(out.contains("(base)"), "{out}");

    // Deprecated, then removed: allowed (nothing consumes it).
    repo.git(&["checkout", "-q", "new-dataset", "--", "."]);
    repo.edit(
        "shop.ds.hcl",
        "    dataset \"legacy\" {\n",
        "    dataset \"legacy\" {\n      deprecated = true\n",
    );
    repo.commit("deprecated");
    verdict(
        &repo.check("new-dataset", "deprecated", "acme/shop@main", &[]),
        0,
    );
    let deprecated = std::fs::read_to_string(repo.model().join("shop.ds.hcl")).unwrap();
    let start = deprecated.find("    dataset \"legacy\" {").unwrap();
    let end = deprecated[start..].find("\n    }\n").unwrap() + start + "\n    }\n".len();
    repo.write(
        "shop.ds.hcl",
        &format!("{}{}", &deprecated[..start], &deprecated[end..]),
    );
    repo.commit("removed");
    verdict(
        &repo.check("deprecated", "removed", "acme/shop@main", &[]),
        0,
    );

    // A dataset a workspace consumes, removed (even deprecated): refused, naming the workspace.
    repo.edit(
        "team.ds.hcl",
        "    dataset \"customers\" {\n",
        "    dataset \"customers\" {\n      deprecated = true\n",
    );
    repo.edit(
        "team.ds.hcl",
        "sink \"crm_db\" \"customers\" {}",
        "sink \"crm_db\" \"customers\" { deprecations_allowed = true }",
    );
    repo.commit("crm-deprecated");
    verdict(
        &repo.check("removed", "crm-deprecated", "acme/crm@main", &[]),
        0,
    );
    let team = std::fs::read_to_string(repo.model().join("team.ds.hcl")).unwrap();
    let start = team.find("    dataset \"customers\" {").unwrap();
    let end = team[start..].find("\n    }\n").unwrap() + start + "\n    }\n".len();
    repo.write(
        "team.ds.hcl",
        &format!(
            "{}    dataset \"accounts\" {{\n      table {{\n        columns = {{\n          id = {{ type = \"integer\", nullable = false, primary_key = true }}\n        }}\n      }}\n    }}\n{}",
            &team[..start],
            &team[end..]
        ),
    );
    repo.commit("consumed-removed");
    let out = verdict(
        &repo.check("crm-deprecated", "consumed-removed", "acme/crm@main", &[]),
        3,
    );
    assert!(
        out.contains("consumers: workspace reports still consumes crm_db.customers, which this change removes"),
        "{out}"
    );
    insta::assert_snapshot!("consumed_removed_text", out);
    let md = verdict(
        &repo.check(
            "crm-deprecated",
            "consumed-removed",
            "acme/crm@main",
            &["--format", "markdown"],
        ),
        3,
    );
    insta::assert_snapshot!("consumed_removed_markdown", md);
}

#[test]
fn the_working_tree_is_the_default_head_and_plan_carries_the_verdict() {
    let repo = Repo::new();
    repo.edit(
        "shop.ds.hcl",
        "name  = { type = \"varchar(200)\" }",
        "name  = { type = \"varchar(100)\" }",
    );
    // Not committed: the working tree is the head.
    let out = ds(
        &repo.model(),
        &["check", "--base", "base", "--actor", "acme/shop@main"],
        &[],
    );
    let out = verdict(&out, 3);
    assert!(out.contains("to the working tree"), "{out}");
    // `ds plan --base`: the verdict above the plan, one markdown comment, exit 3.
    let state = repo.dir.join("state.json");
    let out = ds(
        &repo.model(),
        &[
            "plan",
            "--base",
            "base",
            "--actor",
            "acme/shop@main",
            "--format",
            "markdown",
            "--refresh=false",
            "--state",
            state.to_str().unwrap(),
        ],
        &[],
    );
    let md = verdict(&out, 3);
    assert!(
        md.starts_with("### ⛔ ds check: refused (1 problem)"),
        "{md}"
    );
    let verdict_end = md
        .find("\n\n### ")
        .or_else(|| md.find("\n\n## "))
        .unwrap_or(0);
    assert!(verdict_end > 0 && md.len() < 60_000, "{md}");
    assert!(md[verdict_end..].contains("to create"), "{md}");
}

#[test]
fn bad_input_is_one_clear_line() {
    let repo = Repo::new();
    let one_line = |out: &Output, wanted: &str| {
        assert_eq!(out.status.code(), Some(1), "{}", text(out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(wanted), "{err}");
        assert!(err.trim().lines().count() <= 2, "{err}");
    };
    one_line(
        &repo.check("nosuchrev", "base", "acme/shop@main", &[]),
        "nosuchrev",
    );
    one_line(
        &repo.check("base", "base", "acme-shop", &[]),
        "is not `owner/name@branch`",
    );
    let plain = tempfile::tempdir().unwrap();
    std::fs::write(plain.path().join("x.ds.hcl"), "ecosystem \"e\" {}\n").unwrap();
    one_line(
        &ds(
            plain.path(),
            &["check", "--base", "main", "--actor", "a/b@c"],
            &[],
        ),
        "not inside a git repository",
    );
    repo.write("broken.ds.hcl", "team \"sales\" \"crm\" {\n");
    repo.commit("broken");
    one_line(
        &repo.check("base", "broken", "acme/crm@main", &[]),
        "the proposed model (broken) has 1 error(s), the first at broken.ds.hcl:",
    );
}

/// Without `--actor`: in GitHub Actions the pull request's head repository and branch (from the event
/// file); under `CI` without any, an error; locally, ownership is not judged and the verdict says so.
#[test]
fn the_actor_comes_from_github_actions_when_not_given() {
    let repo = Repo::new();
    repo.edit(
        "team.ds.hcl",
        "email = { type = \"varchar(200)\" }",
        "email = { type = \"varchar(300)\" }",
    );
    repo.commit("widened");
    let event = repo.dir.join("event.json");
    std::fs::write(
        &event,
        r#"{"pull_request": {"head": {"ref": "main", "repo": {"full_name": "acme/shop"}}}}"#,
    )
    .unwrap();
    let run = |envs: &[(&str, &str)]| {
        Command::new(tests::ds_binary())
            .args(["check", "--base", "base", "--head", "widened", "-C"])
            .arg(repo.model())
            .env_remove("CI")
            .env_remove("GITHUB_EVENT_PATH")
            .env_remove("GITHUB_REPOSITORY")
            .env_remove("GITHUB_HEAD_REF")
            .env_remove("GITHUB_REF_NAME")
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(&[("GITHUB_EVENT_PATH", event.to_str().unwrap())]);
    let out = verdict(&out, 3);
    assert!(out.contains("by acme/shop@main"), "{out}");
    let out = run(&[("CI", "true")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("pass --actor owner/name@branch"),
        "{}",
        text(&out)
    );
    let out = verdict(&run(&[]), 0);
    assert!(out.contains("ownership not judged"), "{out}");
}
