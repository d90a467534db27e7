//! `s3_bucket` against the stack's real S3 server (MinIO), through the `ds` binary: create with versioning,
//! lifecycle, policy and tags; no drift right after; drift made by hand shown and repaired by `ds reconcile`;
//! a tag change in place; a bucket deleted, with every object version, only with `--allow-destroy`; wrong keys and a
//! silent endpoint named in one line, without the secret.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use providers::s3::sdk::types::{BucketVersioningStatus, Tag, Tagging, VersioningConfiguration};
use serde_json::{Value, json};
use tests::{S3, TestBucket};

/// A model (the quickstart's files) whose object store holds one bucket of this test, a state file, and
/// the bucket removed (every object version first) when the test ends.
struct Case {
    s3: &'static S3,
    _tmp: tempfile::TempDir,
    model: PathBuf,
    state: PathBuf,
    bucket: TestBucket,
}

impl std::ops::Deref for Case {
    type Target = TestBucket;
    fn deref(&self) -> &TestBucket {
        &self.bucket
    }
}

const POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "PublicReports",
      "Effect": "Allow",
      "Principal": "*",
      "Action": "s3:GetObject",
      "Resource": "arn:aws:s3:::BUCKET/reports/*"
    }
  ]
}"#;

fn bucket_block(bucket: &str, tags: &str) -> String {
    format!(
        "bucket \"{bucket}\" {{\n      versioning = true\n      lifecycle  = {{ expire_after_days = 30 }}\n      \
         tags       = {{ {tags} }}\n      policy     = <<EOT\n{}\nEOT\n    }}",
        POLICY.replace("BUCKET", bucket)
    )
}

impl Case {
    fn new(short: &str) -> Option<Case> {
        let s3 = tests::s3()?;
        let bucket = format!("ds-test-{short}-{}", std::process::id());
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        let block = bucket_block(&bucket, "team = \"data\", purpose = \"archive\"");
        tests::copy_quickstart(&model, |text| {
            tests::quickstart_without_archive(text)
                .replace(
                    "bucket \"ds-archive\" {\n      versioning = true\n    }",
                    &block,
                )
                .replace("http://127.0.0.1:9000", &s3.endpoint)
        });
        let ecosystem = std::fs::read_to_string(model.join("ecosystem.ds.hcl")).unwrap();
        assert!(
            ecosystem.contains(&bucket),
            "the quickstart's bucket block moved"
        );
        Some(Case {
            s3,
            state: tmp.path().join("state.json"),
            _tmp: tmp,
            model,
            bucket: TestBucket::new(s3, bucket, false),
        })
    }

    fn address(&self) -> String {
        format!("s3_bucket.{}", self.name)
    }

    /// `ds <args> --target <this bucket>` (no target for `ds state`) with the stack's keys as the credential `object_store`.
    fn ds(&self, args: &[&str]) -> Output {
        self.ds_with(args, &self.s3.access_key, &self.s3.secret_key)
    }

    fn ds_with(&self, args: &[&str], access_key: &str, secret_key: &str) -> Output {
        let target = args.first() != Some(&"state");
        Command::new(tests::ds_binary())
            .args(args)
            .args(
                target
                    .then(|| ["--target".to_string(), self.address()])
                    .into_iter()
                    .flatten(),
            )
            .args(["-C", self.model.to_str().unwrap()])
            .args(["--state", self.state.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .env("OBJECT_STORE_USER", access_key)
            .env("OBJECT_STORE_PASSWORD", secret_key)
            .output()
            .expect("ds runs")
    }

    fn edit(&self, from: &str, to: &str) {
        let path = self.model.join("ecosystem.ds.hcl");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    /// The plan as JSON (refreshed); its changes to this bucket.
    fn planned(&self) -> Vec<Value> {
        let out = self.ds(&["plan", "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let plan: Value = serde_json::from_slice(&out.stdout).expect("a JSON plan");
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["address"] == json!(self.address()) && c["action"] != json!("no-op"))
            .cloned()
            .collect()
    }

    fn versioning(&self) -> Option<BucketVersioningStatus> {
        self.runtime.block_on(async {
            let out = self
                .client
                .get_bucket_versioning()
                .bucket(&self.name)
                .send()
                .await
                .unwrap();
            out.status().cloned()
        })
    }

    fn tags(&self) -> BTreeMap<String, String> {
        self.runtime.block_on(async {
            let out = self
                .client
                .get_bucket_tagging()
                .bucket(&self.name)
                .send()
                .await
                .unwrap();
            out.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        })
    }

    fn policy(&self) -> Value {
        self.runtime.block_on(async {
            let out = self
                .client
                .get_bucket_policy()
                .bucket(&self.name)
                .send()
                .await
                .unwrap();
            serde_json::from_str(out.policy().unwrap()).unwrap()
        })
    }

    fn lifecycle(&self) -> Vec<(String, Option<i32>)> {
        self.runtime.block_on(async {
            let out = self
                .client
                .get_bucket_lifecycle_configuration()
                .bucket(&self.name)
                .send()
                .await
                .unwrap();
            out.rules()
                .iter()
                .map(|r| {
                    (
                        r.id().unwrap_or("").to_string(),
                        r.expiration().and_then(|e| e.days()),
                    )
                })
                .collect()
        })
    }

    fn exists(&self) -> bool {
        self.runtime.block_on(async {
            self.client
                .head_bucket()
                .bucket(&self.name)
                .send()
                .await
                .is_ok()
        })
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn paths(change: &Value) -> Vec<&str> {
    change["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect()
}

#[test]
fn a_bucket_is_made_as_modelled_its_drift_repaired_and_a_tag_changed_in_place() {
    let Some(case) = Case::new("cycle") else {
        return;
    };
    let out = case.ds(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(case.versioning(), Some(BucketVersioningStatus::Enabled));
    assert_eq!(case.lifecycle(), [("ds-expire".to_string(), Some(30))]);
    assert_eq!(
        case.tags(),
        BTreeMap::from([
            ("purpose".to_string(), "archive".to_string()),
            ("team".to_string(), "data".to_string()),
        ])
    );
    let policy = case.policy();
    assert_eq!(policy["Statement"][0]["Effect"], json!("Allow"));
    assert_eq!(
        providers::s3::normalise_policy(&policy),
        providers::s3::normalise_policy(
            &serde_json::from_str(&POLICY.replace("BUCKET", &case.name)).unwrap()
        ),
        "the server's policy means the modelled one"
    );
    // A refreshed plan right after the apply is empty; applying again changes nothing.
    let out = case.ds(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = case.ds(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Drift made by hand: versioning suspended, a tag removed, the policy replaced.
    case.runtime.block_on(async {
        let c = &case.client;
        c.put_bucket_versioning()
            .bucket(&case.name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Suspended)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let team = Tag::builder().key("team").value("data").build().unwrap();
        c.put_bucket_tagging()
            .bucket(&case.name)
            .tagging(Tagging::builder().tag_set(team).build().unwrap())
            .send()
            .await
            .unwrap();
        let other = POLICY
            .replace("BUCKET", &case.name)
            .replace("reports/*", "*");
        c.put_bucket_policy()
            .bucket(&case.name)
            .policy(other)
            .send()
            .await
            .unwrap();
    });
    let out = case.ds(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let changes = case.planned();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0]["action"], json!("update"), "{changes:#?}");
    let changed = paths(&changes[0]);
    for path in ["versioning", "tags.purpose", "policy.Statement"] {
        assert!(changed.contains(&path), "{path} in {changed:?}");
    }
    assert!(!changed.iter().any(|p| p.starts_with("expire_after_days")));

    let out = case.ds(&["reconcile"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(case.versioning(), Some(BucketVersioningStatus::Enabled));
    assert_eq!(case.tags().len(), 2);
    assert!(case.policy().to_string().contains("reports/*"));
    let out = case.ds(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A tag changed in the model: an update in place, not a replace.
    case.edit("purpose = \"archive\"", "purpose = \"batches\"");
    let changes = case.planned();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0]["action"], json!("update"), "{changes:#?}");
    assert_eq!(paths(&changes[0]), ["tags.purpose"]);
    let out = case.ds(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(case.tags()["purpose"], "batches");

    // `versioning = false` on a versioned bucket suspends it; the read calls that `false`: no drift.
    case.edit("versioning = true", "versioning = false");
    let out = case.ds(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(case.versioning(), Some(BucketVersioningStatus::Suspended));
    let out = case.ds(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_bucket_is_deleted_with_its_objects_only_when_allowed() {
    let Some(case) = Case::new("delete") else {
        return;
    };
    let out = case.ds(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A bucket deleted by hand is made again.
    case.empty(true);
    assert!(!case.exists());
    let changes = case.planned();
    assert_eq!(changes[0]["action"], json!("create"), "{changes:#?}");
    let out = case.ds(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(case.exists());

    // Objects in the (versioned) bucket: 1,100 versions of 550 keys and a delete marker, more than one page
    // of a listing.
    for i in 0..550 {
        for version in ["one", "two"] {
            case.put(&format!("batches/{i}.json"), version.as_bytes().to_vec());
        }
    }
    assert!(case.delete("batches/0.json"));
    let block = std::fs::read_to_string(case.model.join("ecosystem.ds.hcl")).unwrap();
    let start = block.find(&format!("bucket \"{}\"", case.name)).unwrap();
    let end = start + block[start..].find("EOT\n    }").unwrap() + "EOT\n    }".len();
    case.edit(&block[start..end], "");
    // The planner refuses to destroy a protected resource without consent, changing nothing...
    let out = case.ds(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--allow-destroy"), "{}", text(&out));
    assert!(case.exists());
    assert_eq!(case.object("batches/1.json"), Some(b"two".to_vec()));
    let listed = case.ds(&["state", "list"]);
    assert!(text(&listed).contains(&case.address()), "{}", text(&listed));
    // ... and with it, the bucket goes with every object version in it.
    let out = case.ds(&[
        "apply",
        "--auto-approve",
        "--allow-destroy",
        &case.address(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!case.exists());
    let listed = case.ds(&["state", "list"]);
    assert!(
        !text(&listed).contains(&case.address()),
        "{}",
        text(&listed)
    );
}

#[test]
fn wrong_keys_and_a_silent_endpoint_are_named_without_the_secret() {
    let Some(case) = Case::new("keys") else {
        return;
    };
    let endpoint = format!("{}/{}", case.s3.endpoint, case.name);
    let secret = "not-the-secret-5f0e2a";
    let out = case.ds_with(&["apply", "--auto-approve"], &case.s3.access_key, secret);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("SignatureDoesNotMatch"), "{said}");
    assert!(
        said.contains(&endpoint) && said.contains(&case.address()),
        "{said}"
    );
    assert!(!said.contains(secret), "{said}");

    let out = case.ds_with(&["apply", "--auto-approve"], "no-such-key", secret);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("InvalidAccessKeyId") && said.contains(&endpoint),
        "{said}"
    );
    assert!(!said.contains(secret), "{said}");
    assert!(!case.exists());

    case.edit(&case.s3.endpoint.clone(), "http://127.0.0.1:1");
    let out = case.ds(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("http://127.0.0.1:1/") && said.contains("the endpoint does not answer"),
        "{said}"
    );
}

#[test]
fn a_bucket_compiles_with_its_credential_and_its_policy_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let block = bucket_block("ds-archive", "team = \"data\"");
    tests::copy_quickstart(tmp.path(), |text| {
        text.replace(
            "bucket \"ds-archive\" {\n      versioning = true\n    }",
            &block,
        )
    });
    let sources = planner::source::read_dir(tmp.path()).unwrap();
    let (model, diagnostics) = planner::check(&sources);
    assert!(!diagnostics.has_errors(), "{diagnostics:?}");
    let graph = planner::compile::compile(&model).unwrap();
    let bucket = graph.get("s3_bucket.ds-archive").unwrap();
    let policy: Value = serde_json::from_str(&POLICY.replace("BUCKET", "ds-archive")).unwrap();
    assert_eq!(
        bucket.attributes,
        json!({"endpoint": "http://127.0.0.1:9000", "region": "us-east-1", "credential": "object_store",
               "name": "ds-archive", "versioning": true, "expire_after_days": 30,
               "tags": {"team": "data"}, "policy": policy})
    );
    assert!(bucket.kind.validate(&bucket.attributes).is_ok());
}
