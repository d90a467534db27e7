//! `s3_bucket`'s IO: the bucket and its versioning, lifecycle, policy and tagging configurations, read and
//! written one S3 call each. An apply changes only the configurations that differ from the record (all of
//! them on a create, so that a bucket left half-made by a crash is completed); a delete (only ever planned
//! when `--allow-destroy` allows it) takes every object version and delete marker with the bucket.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, ObjectIdentifier, Tag, Tagging, VersioningConfiguration,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{BucketConfig, normalise_policy};
use crate::Action;
use crate::live::{BoxFuture, Change, Ctx, Live, ProviderError};
use crate::postgres::live::operation_name;

/// The id of the one lifecycle rule `ds` writes (`expire_after_days`).
pub const LIFECYCLE_RULE: &str = "ds-expire";

/// `s3_bucket`'s IO.
pub struct BucketLive;

/// An S3 client for `endpoint`: path-style addressing, static keys, the SDK's standard retries (three
/// attempts, for throttling, 5xx and connection errors), a 5 s connect and a 60 s operation timeout.
pub fn client(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> Client {
    Client::from_conf(state::s3_shared::client_config(
        endpoint, region, access_key, secret_key,
    ))
}

/// The S3 clients of one run, one per endpoint, region and credential, built on first use: a refresh of
/// many buckets, and every batch a scheduler archives, reuse one client and its connections (and resolve
/// the credential once), as [`crate::postgres::live::Pools`] does for databases.
#[derive(Default)]
pub struct Clients(std::sync::Mutex<std::collections::HashMap<(String, String, String), Client>>);

impl Clients {
    /// The client for `endpoint` and `region` with the keys of the credential `credential`; the error is
    /// the credential's (it names what to set, never a secret).
    pub fn get(
        &self,
        ctx: &Ctx,
        endpoint: &str,
        region: &str,
        credential: &str,
    ) -> Result<Client, String> {
        let key = (
            endpoint.to_string(),
            region.to_string(),
            credential.to_string(),
        );
        if let Some(client) = self.0.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(client);
        }
        let keys = ctx.credentials.resolve(credential)?;
        let made = client(endpoint, region, &keys.user, keys.password.expose());
        if let Ok(mut clients) = self.0.lock() {
            clients.insert(key, made.clone());
        }
        Ok(made)
    }
}

/// One bucket, as an apply or read reaches it.
struct Target<'a> {
    address: &'a str,
    operation: &'static str,
    config: BucketConfig,
    client: Client,
}

use state::s3_shared::{error_code as code, redacted};

impl<'a> Target<'a> {
    fn of(
        ctx: &Ctx,
        address: &'a str,
        operation: &'static str,
        attributes: &Value,
    ) -> Result<Target<'a>, ProviderError> {
        let config = BucketConfig::deserialize(attributes).map_err(|e| ProviderError {
            address: address.to_string(),
            operation: operation.to_string(),
            endpoint: attributes
                .get("endpoint")
                .and_then(Value::as_str)
                .map_or("(unknown)".into(), redacted),
            message: format!("its attributes are not a bucket's: {e}"),
            transient: false,
        })?;
        let fail = |message: String| ProviderError {
            address: address.to_string(),
            operation: operation.to_string(),
            endpoint: format!("{}/{}", redacted(&config.endpoint), config.name),
            message,
            transient: false,
        };
        let Some(name) = &config.credential else {
            return Err(fail(
                "no `credential` names its access key: plan again with this ds".into(),
            ));
        };
        let client = ctx
            .s3
            .get(ctx, &config.endpoint, &config.region, name)
            .map_err(fail)?;
        Ok(Target {
            address,
            operation,
            config,
            client,
        })
    }

    fn bucket(&self) -> &str {
        &self.config.name
    }

    fn fail(&self, message: String, transient: bool) -> ProviderError {
        ProviderError {
            address: self.address.to_string(),
            operation: self.operation.to_string(),
            endpoint: format!("{}/{}", redacted(&self.config.endpoint), self.config.name),
            message,
            transient,
        }
    }

    /// One line for a failed S3 call `call` (`PutBucketPolicy`): `state::s3_shared::describe_error`.
    fn error<E>(&self, call: &str, e: SdkError<E>) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (message, transient) = state::s3_shared::describe_error(call, &e);
        self.fail(message, transient)
    }

    /// Whether the bucket is versioned (`Suspended` counts as not), or `None` when there is no bucket.
    async fn versioning(&self) -> Result<Option<bool>, ProviderError> {
        match self
            .client
            .get_bucket_versioning()
            .bucket(self.bucket())
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.status() == Some(&BucketVersioningStatus::Enabled))),
            Err(e) if code(&e) == Some("NoSuchBucket") => Ok(None),
            Err(e) => Err(self.error("GetBucketVersioning", e)),
        }
    }

    /// `expire_after_days` as the bucket has it: `null` without a lifecycle configuration, the days of
    /// `ds`'s one rule, or a description of rules `ds` did not make (drift, replaced by the next apply).
    async fn lifecycle(&self) -> Result<Value, ProviderError> {
        let out = match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(self.bucket())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if code(&e) == Some("NoSuchLifecycleConfiguration") => return Ok(Value::Null),
            Err(e) => return Err(self.error("GetBucketLifecycleConfiguration", e)),
        };
        let rules = out.rules();
        let ours = match rules {
            [] => return Ok(Value::Null),
            [rule]
                if rule.id() == Some(LIFECYCLE_RULE)
                    && rule.status == ExpirationStatus::Enabled =>
            {
                let everything = rule.filter().is_none_or(|f| {
                    f.prefix().unwrap_or("").is_empty() && f.tag().is_none() && f.and().is_none()
                });
                rule.expiration()
                    .and_then(|e| e.days())
                    .filter(|_| everything && rule.noncurrent_version_expiration().is_none())
            }
            _ => None,
        };
        Ok(match ours {
            Some(days) => json!(days),
            None => json!(format!("{} lifecycle rule(s) not made by ds", rules.len())),
        })
    }

    /// The bucket policy, parsed and in normal form.
    async fn policy(&self) -> Result<Option<Value>, ProviderError> {
        let out = match self
            .client
            .get_bucket_policy()
            .bucket(self.bucket())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if code(&e) == Some("NoSuchBucketPolicy") => return Ok(None),
            Err(e) => return Err(self.error("GetBucketPolicy", e)),
        };
        match out.policy().filter(|p| !p.trim().is_empty()) {
            None => Ok(None),
            Some(text) => serde_json::from_str::<Value>(text)
                .map(|p| Some(normalise_policy(&p)))
                .map_err(|e| {
                    self.fail(
                        format!("GetBucketPolicy: the policy is not JSON ({e})"),
                        false,
                    )
                }),
        }
    }

    async fn tags(&self) -> Result<BTreeMap<String, String>, ProviderError> {
        match self
            .client
            .get_bucket_tagging()
            .bucket(self.bucket())
            .send()
            .await
        {
            Ok(out) => Ok(out
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()),
            Err(e) if code(&e) == Some("NoSuchTagSet") => Ok(BTreeMap::new()),
            Err(e) => Err(self.error("GetBucketTagging", e)),
        }
    }

    /// Makes the bucket; one that exists already and is ours is fine (an apply run again after a crash).
    async fn create(&self) -> Result<(), ProviderError> {
        let mut request = self.client.create_bucket().bucket(self.bucket());
        if self.config.region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(
                        self.config.region.as_str(),
                    ))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("BucketAlreadyOwnedByYou") => Ok(()),
            Err(e) => Err(self.error("CreateBucket", e)),
        }
    }

    /// Versioning on, or (S3 cannot turn it off) suspended when it was ever on.
    async fn set_versioning(&self, enabled: bool) -> Result<(), ProviderError> {
        let status = if enabled {
            BucketVersioningStatus::Enabled
        } else {
            let now = self
                .client
                .get_bucket_versioning()
                .bucket(self.bucket())
                .send()
                .await
                .map_err(|e| self.error("GetBucketVersioning", e))?;
            if now.status() != Some(&BucketVersioningStatus::Enabled) {
                return Ok(());
            }
            BucketVersioningStatus::Suspended
        };
        self.client
            .put_bucket_versioning()
            .bucket(self.bucket())
            .versioning_configuration(VersioningConfiguration::builder().status(status).build())
            .send()
            .await
            .map_err(|e| self.error("PutBucketVersioning", e))?;
        Ok(())
    }

    async fn set_lifecycle(&self, days: Option<u32>) -> Result<(), ProviderError> {
        let Some(days) = days else {
            self.client
                .delete_bucket_lifecycle()
                .bucket(self.bucket())
                .send()
                .await
                .map_err(|e| self.error("DeleteBucketLifecycle", e))?;
            return Ok(());
        };
        let built = |e: aws_sdk_s3::error::BuildError| {
            self.fail(format!("PutBucketLifecycleConfiguration: {e}"), false)
        };
        let rule = LifecycleRule::builder()
            .id(LIFECYCLE_RULE)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .expiration(
                LifecycleExpiration::builder()
                    .days(i32::try_from(days).unwrap_or(i32::MAX))
                    .build(),
            )
            .build()
            .map_err(built)?;
        let lifecycle = BucketLifecycleConfiguration::builder()
            .rules(rule)
            .build()
            .map_err(built)?;
        self.client
            .put_bucket_lifecycle_configuration()
            .bucket(self.bucket())
            .lifecycle_configuration(lifecycle)
            .send()
            .await
            .map_err(|e| self.error("PutBucketLifecycleConfiguration", e))?;
        Ok(())
    }

    async fn set_policy(&self, policy: Option<&Value>) -> Result<(), ProviderError> {
        match policy {
            Some(policy) => {
                self.client
                    .put_bucket_policy()
                    .bucket(self.bucket())
                    // In normal form: MinIO, for one, refuses a `Statement` that is not a list.
                    .policy(normalise_policy(policy).to_string())
                    .send()
                    .await
                    .map_err(|e| self.error("PutBucketPolicy", e))?;
            }
            None => {
                self.client
                    .delete_bucket_policy()
                    .bucket(self.bucket())
                    .send()
                    .await
                    .map_err(|e| self.error("DeleteBucketPolicy", e))?;
            }
        }
        Ok(())
    }

    async fn set_tags(&self, tags: &BTreeMap<String, String>) -> Result<(), ProviderError> {
        if tags.is_empty() {
            self.client
                .delete_bucket_tagging()
                .bucket(self.bucket())
                .send()
                .await
                .map_err(|e| self.error("DeleteBucketTagging", e))?;
            return Ok(());
        }
        let built =
            |e: aws_sdk_s3::error::BuildError| self.fail(format!("PutBucketTagging: {e}"), false);
        let set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(built)?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .map_err(built)?;
        self.client
            .put_bucket_tagging()
            .bucket(self.bucket())
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| self.error("PutBucketTagging", e))?;
        Ok(())
    }

    /// Deletes the bucket, and first every object version and delete marker in it. A delete of this
    /// protected kind reaches the provider only when the plan allowed it (`--allow-destroy ADDR`): the
    /// objects go with the bucket, as a table's rows go with the table. A bucket that is gone already is
    /// fine.
    async fn delete(&self) -> Result<(), ProviderError> {
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let listed = match self
                .client
                .list_object_versions()
                .bucket(self.bucket())
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
            {
                Ok(listed) => listed,
                Err(e) if code(&e) == Some("NoSuchBucket") => return Ok(()),
                Err(e) => return Err(self.error("ListObjectVersions", e)),
            };
            let versions = listed.versions().iter().map(|v| (v.key(), v.version_id()));
            let markers = listed
                .delete_markers()
                .iter()
                .map(|m| (m.key(), m.version_id()));
            let objects: Vec<ObjectIdentifier> = versions
                .chain(markers)
                .filter_map(|(key, version)| {
                    ObjectIdentifier::builder()
                        .key(key?)
                        .set_version_id(version.map(str::to_string))
                        .build()
                        .ok()
                })
                .collect();
            if !objects.is_empty() {
                let delete = Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()
                    .map_err(|e| self.fail(format!("DeleteObjects: {e}"), false))?;
                let out = self
                    .client
                    .delete_objects()
                    .bucket(self.bucket())
                    .delete(delete)
                    .send()
                    .await
                    .map_err(|e| self.error("DeleteObjects", e))?;
                if let Some(failed) = out.errors().first() {
                    return Err(self.fail(
                        format!(
                            "DeleteObjects: `{}`: {}: {} ({} object(s) not deleted; the bucket stays)",
                            failed.key().unwrap_or_default(),
                            failed.code().unwrap_or("no error code"),
                            failed.message().unwrap_or("no message"),
                            out.errors().len()
                        ),
                        false,
                    ));
                }
            }
            if listed.is_truncated() != Some(true) {
                break;
            }
            key_marker = listed.next_key_marker().map(str::to_string);
            version_marker = listed.next_version_id_marker().map(str::to_string);
        }
        match self
            .client
            .delete_bucket()
            .bucket(self.bucket())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("NoSuchBucket") => Ok(()),
            Err(e) => Err(self.error("DeleteBucket", e)),
        }
    }

    /// Makes every configuration that differs from `prior` (all of them without one) as `desired` says.
    async fn converge(&self, desired: &Value, prior: Option<&Value>) -> Result<(), ProviderError> {
        let changed = |key: &str| {
            prior.is_none_or(|p| {
                let (d, p) = (desired.get(key), p.get(key));
                if key == "policy" {
                    d.map(normalise_policy) != p.map(normalise_policy)
                } else {
                    d.unwrap_or(&Value::Null) != p.unwrap_or(&Value::Null)
                }
            })
        };
        if changed("versioning") {
            self.set_versioning(self.config.versioning).await?;
        }
        if changed("expire_after_days") {
            self.set_lifecycle(self.config.expire_after_days).await?;
        }
        if changed("policy") {
            self.set_policy(self.config.policy.as_ref()).await?;
        }
        if changed("tags") {
            self.set_tags(&self.config.tags).await?;
        }
        Ok(())
    }
}

impl Live for BucketLive {
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        prior: &'a Value,
        _container: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let target = Target::of(ctx, address, "read", prior)?;
            let Some(versioning) = target.versioning().await? else {
                return Ok(None);
            };
            // The other three configurations at once: one round trip's wait, not three.
            let (lifecycle, tags, policy) =
                futures_util::try_join!(target.lifecycle(), target.tags(), target.policy())?;
            let mut now = prior.clone();
            now["versioning"] = json!(versioning);
            now["expire_after_days"] = lifecycle;
            now["tags"] = json!(tags);
            match policy {
                Some(policy) => now["policy"] = policy,
                None => {
                    if let Some(now) = now.as_object_mut() {
                        now.remove("policy");
                    }
                }
            }
            Ok(Some(now))
        })
    }

    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let operation = operation_name(change.action);
            if matches!(change.action, Action::Delete | Action::Replace) {
                // A replace (another name or server, allowed with --allow-destroy) deletes the old one
                // with its objects and makes the new one empty, as a replaced table starts empty.
                let old = change
                    .prior
                    .or(change.desired)
                    .expect("a change has prior or desired attributes");
                Target::of(ctx, change.address, operation, old)?
                    .delete()
                    .await?;
                if change.action == Action::Delete {
                    return Ok(None);
                }
            }
            let desired = change
                .desired
                .expect("a create or update has desired attributes");
            let target = Target::of(ctx, change.address, operation, desired)?;
            let prior = if change.action == Action::Update {
                change.prior
            } else {
                target.create().await?;
                None
            };
            target.converge(desired, prior).await?;
            // The policy is recorded in normal form, as a read gives it: the record then tells drift from
            // a server's rewriting of the document.
            let mut recorded = desired.clone();
            if let Some(policy) = recorded.get_mut("policy") {
                *policy = normalise_policy(policy);
            }
            Ok(Some(recorded))
        })
    }
}
