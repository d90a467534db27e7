//! The `s3` backend: the state as one object of a bucket, its lock as a second object beside it.
//!
//! - `<key>`: the state document (the same JSON as a local state file). A write reads it (remembering its
//!   ETag), checks lineage and serial, and puts the new document with `If-Match: <that ETag>` (or
//!   `If-None-Match: *` when there was none): of two writers that read the same version only one wins, the
//!   other gets [`StateError::Stale`] (the server answers 412 Precondition Failed).
//! - `<key>.lock`: the lease, the same [`LockInfo`] JSON as a local lock file. Taking it is a put with
//!   `If-None-Match: *`; an expired lock is taken over by a put with `If-Match: <the expired lock's ETag>`,
//!   so two processes racing for it cannot both win. Renewing is a put with `If-Match` of the lock read
//!   (if it still has our id); releasing deletes it (if it still has our id).
//!
//! The server must support conditional writes (AWS S3 and MinIO do); one that answers 501 Not Implemented
//! gets an error saying so. The SDK's client is async: it runs on a small runtime on a thread of its own,
//! so the backend can be called from inside the caller's async runtime.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use crate::backend::Backend;
use crate::error::{Stale, StateError};
use crate::format::{State, parse, to_bytes};
use crate::lock::{Lease, LockGuard, LockInfo, LockRequest};

/// Where the state is: an S3 endpoint, a bucket and a key, and the keys to reach them (resolved by the
/// caller).
#[derive(Clone)]
pub struct S3Target {
    /// `http://127.0.0.1:9000` (path-style addressing is used).
    pub endpoint: String,
    /// The region requests are signed for (`us-east-1`).
    pub region: String,
    /// The access key.
    pub access_key: String,
    /// The secret key (never shown).
    pub secret_key: String,
    /// The bucket (the first lock makes it, with versioning, when it does not exist).
    pub bucket: String,
    /// The state object's key; the lock is `<key>.lock`.
    pub key: String,
}

type Job = Box<dyn FnOnce(Client) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The `s3` state backend.
pub struct S3Backend {
    shared: Arc<Shared>,
}

/// What the backend and its leases share: the client's thread and where things are.
struct Shared {
    /// `s3://bucket/key`, for messages.
    display: String,
    /// The endpoint without user information.
    endpoint: String,
    bucket: String,
    region: String,
    key: String,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Lock ids this process holds (a write is refused while someone else holds the lock).
    held: Mutex<Vec<String>>,
}

/// How an S3 call failed.
enum Failure {
    /// 412 Precondition Failed (or 409 ConditionalRequestConflict): the condition did not hold.
    Precondition,
    /// 501 Not Implemented: the server does not support the conditional header.
    NotImplemented(String),
    /// 404: no such key.
    NotFound,
    /// No such bucket (the message says what to do).
    NoBucket(String),
    /// Anything else, as one line.
    Other(String),
}

fn classify<E>(call: &str, e: SdkError<E>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(s) = &e {
        let status = s.raw().status().as_u16();
        let code = s.err().code().unwrap_or("no error code");
        match (status, code) {
            (412, _) | (409, "ConditionalRequestConflict") => return Failure::Precondition,
            (501, _) | (_, "NotImplemented") => {
                return Failure::NotImplemented(describe_error(call, &e).0);
            }
            (404, "NoSuchKey") | (404, "NotFound") => return Failure::NotFound,
            (_, "NoSuchBucket") => {
                return Failure::NoBucket(format!(
                    "{} (create the bucket first)",
                    describe_error(call, &e).0
                ));
            }
            _ => {}
        }
    }
    Failure::Other(describe_error(call, &e).0)
}

/// One line for a failed S3 call `call` (`PutObject`), and whether trying again may help: the S3 error
/// code and message (with what to check for a refused key), or that the endpoint does not answer. The
/// SDK's messages never hold the secret key. Shared with the `s3_bucket` provider.
pub fn describe_error<E>(call: &str, e: &SdkError<E>) -> (String, bool)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = s.err().code().unwrap_or("no error code");
            let message = s.err().message().unwrap_or("no message");
            let hint = match code {
                "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                    " (check the credential's access key and secret key)"
                }
                "AccessDenied" => " (the access key may not do this)",
                _ => "",
            };
            (
                format!("{call}: {code}: {message}{hint}"),
                status >= 500 || code == "SlowDown",
            )
        }
        SdkError::DispatchFailure(d) => {
            let what = if d.is_timeout() {
                "the endpoint did not answer in time"
            } else if d.is_io() {
                "the endpoint does not answer (is the S3 server running?)"
            } else {
                "the request could not be sent"
            };
            (format!("{call}: {what}: {}", innermost(e)), true)
        }
        SdkError::TimeoutError(_) => (
            format!("{call}: no answer within the operation timeout"),
            true,
        ),
        SdkError::ResponseError(_) => (
            format!("{call}: the response could not be read: {}", innermost(e)),
            true,
        ),
        _ => (format!("{call}: {}", innermost(e)), false),
    }
}

/// The S3 error code of a failed call (`NoSuchBucket`), if the server sent one.
pub fn error_code<E: ProvideErrorMetadata>(e: &SdkError<E>) -> Option<&str> {
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// The innermost cause of an error chain (a connection refused, say).
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `scheme://host:port`, without any user information (shared with the `s3_bucket` provider).
pub fn redacted(endpoint: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{}", rest.trim_end_matches('/'))
        }
        None => endpoint.trim_end_matches('/').to_string(),
    }
}

/// The S3 client configuration `ds` uses everywhere (the state backend here, the `s3` provider too):
/// path-style requests to `endpoint` with a static key, the SDK's standard retries (3 attempts, for
/// throttling, 5xx and connection errors), a 5 s connect and a 60 s operation timeout.
pub fn client_config(
    endpoint: &str,
    region: &str,
    access_key: &str,
    secret_key: &str,
) -> aws_sdk_s3::Config {
    aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "ds"))
        .force_path_style(true)
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(3))
        .build()
}

impl S3Backend {
    /// Starts the client (on its own thread). Nothing is sent until the first call.
    pub fn connect(target: S3Target) -> Result<S3Backend, StateError> {
        let display = format!("s3://{}/{}", target.bucket, target.key);
        let (jobs, inbox) = mpsc::channel::<Job>();
        let config = client_config(
            &target.endpoint,
            &target.region,
            &target.access_key,
            &target.secret_key,
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| io_error(&display, "start the state's S3 client", source))?;
        std::thread::Builder::new()
            .name("ds-state-s3".into())
            .spawn(move || {
                let client = runtime.block_on(async { Client::from_conf(config) });
                for job in inbox {
                    runtime.block_on(job(client.clone()));
                }
            })
            .map_err(|source| io_error(&display, "start the state's S3 client", source))?;
        Ok(S3Backend {
            shared: Arc::new(Shared {
                display,
                endpoint: redacted(&target.endpoint),
                bucket: target.bucket,
                region: target.region,
                key: target.key,
                jobs: Mutex::new(jobs),
                held: Mutex::new(Vec::new()),
            }),
        })
    }
}

fn io_error(display: &str, action: &'static str, source: std::io::Error) -> StateError {
    StateError::Io {
        path: PathBuf::from(display),
        action,
        source,
    }
}

impl Shared {
    fn path(&self) -> PathBuf {
        PathBuf::from(&self.display)
    }

    fn lock_key(&self) -> String {
        format!("{}.lock", self.key)
    }

    /// Runs `f` with the client on the client's thread and waits for its result.
    fn call<T, F>(
        &self,
        what: &'static str,
        f: impl FnOnce(Client) -> F + Send + 'static,
    ) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let gone = || {
            io_error(
                &self.display,
                what,
                std::io::Error::other("the S3 client's thread ended"),
            )
        };
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let _ = tx.send(f(client).await);
            })
        });
        self.jobs
            .lock()
            .map_err(|_| gone())?
            .send(job)
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())
    }

    /// A failed call as a [`StateError::Io`] naming the endpoint, bucket and key.
    fn fail(&self, action: &'static str, failure: Failure) -> StateError {
        let message = match failure {
            Failure::Precondition => "the condition did not hold (412 Precondition Failed)".into(),
            Failure::NotFound => "not found".into(),
            Failure::NotImplemented(m) => format!(
                "the S3 server at {} does not support conditional writes (If-Match / If-None-Match), which \
                 the s3 state backend needs: {m}",
                self.endpoint
            ),
            Failure::Other(m) | Failure::NoBucket(m) => format!("{m} (endpoint {})", self.endpoint),
        };
        io_error(&self.display, action, std::io::Error::other(message))
    }

    /// The object `key`'s bytes and ETag; `None` when there is none.
    fn get(
        &self,
        what: &'static str,
        key: String,
    ) -> Result<Option<(Vec<u8>, String)>, StateError> {
        let bucket = self.bucket.clone();
        let result = self.call(what, move |c| async move {
            let out = match c.get_object().bucket(bucket).key(key).send().await {
                Ok(out) => out,
                Err(e) => return Err(classify("GetObject", e)),
            };
            let etag = out.e_tag().unwrap_or_default().to_string();
            match out.body.collect().await {
                Ok(data) => Ok((data.into_bytes().to_vec(), etag)),
                Err(e) => Err(Failure::Other(format!(
                    "GetObject: the body could not be read: {e}"
                ))),
            }
        })?;
        match result {
            Ok(found) => Ok(Some(found)),
            // No bucket yet: no state yet (a plan before the first apply, which makes the bucket).
            Err(Failure::NotFound) | Err(Failure::NoBucket(_)) => Ok(None),
            Err(failure) => Err(self.fail(what, failure)),
        }
    }

    /// Puts `bytes` at `key` if it still has ETag `etag` (`None`: if there is no object). Returns whether
    /// the condition held.
    fn put(
        &self,
        what: &'static str,
        key: String,
        bytes: Vec<u8>,
        etag: Option<String>,
    ) -> Result<bool, StateError> {
        let bucket = self.bucket.clone();
        let result = self.call(what, move |c| async move {
            let request = c
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type("application/json")
                .body(ByteStream::from(bytes));
            let request = match etag {
                Some(etag) => request.if_match(etag),
                None => request.if_none_match("*"),
            };
            request
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("PutObject", e))
        })?;
        match result {
            Ok(()) => Ok(true),
            Err(Failure::Precondition) => Ok(false),
            Err(failure) => Err(self.fail(what, failure)),
        }
    }

    /// Makes the bucket, with versioning on (every state version kept), when it does not exist: the state
    /// bucket is one of the model's buckets, which the first apply could not otherwise lock the state in.
    /// The model's settings for it are applied as for any bucket (the `s3_bucket` provider adopts it).
    fn ensure_bucket(&self) -> Result<(), StateError> {
        let (bucket, region) = (self.bucket.clone(), self.region.clone());
        let result = self.call("make the state bucket", move |c| async move {
            match c.head_bucket().bucket(&bucket).send().await {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => {}
                Err(e) => return Err(classify("HeadBucket", e)),
            }
            let mut request = c.create_bucket().bucket(&bucket);
            if region != "us-east-1" {
                request = request.create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                            region.as_str(),
                        ))
                        .build(),
                );
            }
            match request.send().await {
                Ok(_) => {}
                Err(e) if error_code(&e) == Some("BucketAlreadyOwnedByYou") => {}
                Err(e) => return Err(classify("CreateBucket", e)),
            }
            c.put_bucket_versioning()
                .bucket(&bucket)
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("PutBucketVersioning", e))
        })?;
        result.map_err(|failure| self.fail("make the state bucket", failure))
    }

    /// Deletes the object `key` if it still has ETag `etag`. A server that refuses the condition on a
    /// delete (501) gets an unconditional delete: the caller has just checked the object is the one to go.
    fn delete(&self, what: &'static str, key: String, etag: String) -> Result<(), StateError> {
        let bucket = self.bucket.clone();
        let result = self.call(what, move |c| async move {
            let conditional = c
                .delete_object()
                .bucket(&bucket)
                .key(&key)
                .if_match(etag)
                .send()
                .await;
            match conditional.map_err(|e| classify("DeleteObject", e)) {
                Err(Failure::NotImplemented(_)) => c
                    .delete_object()
                    .bucket(&bucket)
                    .key(&key)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify("DeleteObject", e)),
                other => other.map(|_| ()),
            }
        })?;
        match result {
            // Gone, or changed since it was read: either way it is no longer the lock we meant to remove.
            Ok(()) | Err(Failure::NotFound) | Err(Failure::Precondition) => Ok(()),
            Err(failure) => Err(self.fail(what, failure)),
        }
    }

    /// The lock object, parsed, and its ETag.
    fn stored_lock(&self) -> Result<Option<(LockInfo, String)>, StateError> {
        let Some((bytes, etag)) = self.get("read the state lock", self.lock_key())? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(|info| Some((info, etag)))
            .map_err(|e| StateError::LockCorrupt {
                path: PathBuf::from(format!("s3://{}/{}", self.bucket, self.lock_key())),
                message: e.to_string(),
            })
    }

    /// The stale-write error for a writer that read `lineage` at serial `read` and lost a conditional put.
    fn stale(&self, lineage: &str, read: u64) -> Result<StateError, StateError> {
        let reason = match self.get("read the state", self.key.clone())? {
            Some((bytes, _)) => {
                let stored = parse(&bytes, &self.path())?;
                if stored.lineage != lineage {
                    Stale::Lineage {
                        read: lineage.to_string(),
                        stored: stored.lineage,
                    }
                } else {
                    Stale::Serial {
                        read,
                        stored: stored.serial,
                    }
                }
            }
            None => Stale::Serial { read, stored: 0 },
        };
        Ok(StateError::Stale {
            path: self.path(),
            reason,
        })
    }
}

struct S3Lease {
    shared: Arc<Shared>,
}

impl Lease for S3Lease {
    fn renew(&self, info: &LockInfo) -> Result<(), StateError> {
        let shared = &self.shared;
        let lost = |holder: Option<LockInfo>| StateError::LockLost {
            path: shared.path(),
            id: info.id.clone(),
            holder: holder.map(Box::new),
        };
        let Some((stored, etag)) = shared.stored_lock()? else {
            return Err(lost(None));
        };
        if stored.id != info.id {
            return Err(lost(Some(stored)));
        }
        if shared.put(
            "renew the state lock",
            shared.lock_key(),
            info.to_bytes(),
            Some(etag),
        )? {
            Ok(())
        } else {
            Err(lost(shared.stored_lock().ok().flatten().map(|(i, _)| i)))
        }
    }

    fn release(&self, id: &str) -> Result<(), StateError> {
        let shared = &self.shared;
        if let Ok(mut held) = shared.held.lock() {
            held.retain(|h| h != id);
        }
        match shared.stored_lock() {
            Ok(Some((stored, etag))) if stored.id == id => {
                shared.delete("release the state lock", shared.lock_key(), etag)
            }
            Ok(_) | Err(StateError::LockCorrupt { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Backend for S3Backend {
    fn read(&self) -> Result<Option<State>, StateError> {
        let shared = &self.shared;
        match shared.get("read the state", shared.key.clone())? {
            None => Ok(None),
            Some((bytes, _)) => parse(&bytes, &shared.path()).map(Some),
        }
    }

    fn write(&self, state: &mut State) -> Result<(), StateError> {
        let shared = &self.shared;
        // Refused while someone else holds an unexpired lock.
        if let Some((lock, _)) = shared.stored_lock()?
            && !lock.is_expired(SystemTime::now())
            && !shared
                .held
                .lock()
                .map(|h| h.contains(&lock.id))
                .unwrap_or(false)
        {
            return Err(StateError::Locked {
                path: shared.path(),
                info: Box::new(lock),
            });
        }
        let current = shared.get("read the state", shared.key.clone())?;
        let etag = match &current {
            None => None,
            Some((bytes, etag)) => {
                let stored = parse(bytes, &shared.path())?;
                if stored.lineage != state.lineage {
                    return Err(StateError::Stale {
                        path: shared.path(),
                        reason: Stale::Lineage {
                            read: state.lineage.clone(),
                            stored: stored.lineage,
                        },
                    });
                }
                if stored.serial != state.serial {
                    return Err(StateError::Stale {
                        path: shared.path(),
                        reason: Stale::Serial {
                            read: state.serial,
                            stored: stored.serial,
                        },
                    });
                }
                if stored.model == state.model && stored.resources == state.resources {
                    return Ok(());
                }
                Some(etag.clone())
            }
        };
        let read_serial = state.serial;
        state.serial += 1;
        let bytes = to_bytes(state);
        match shared.put("write the state", shared.key.clone(), bytes, etag) {
            Ok(true) => Ok(()),
            Ok(false) => {
                state.serial = read_serial;
                Err(shared.stale(&state.lineage, read_serial)?)
            }
            Err(e) => {
                state.serial = read_serial;
                Err(e)
            }
        }
    }

    fn lock(&self, request: &LockRequest) -> Result<LockGuard, StateError> {
        let shared = &self.shared;
        shared.ensure_bucket()?;
        let info = LockInfo::new(request, SystemTime::now());
        // Create; if a lock is in place and expired, replace exactly that one. A few rounds, in case the
        // lock changes hands between reading and writing.
        for _ in 0..5 {
            let expected = match shared.stored_lock()? {
                None => None,
                Some((holder, etag)) => {
                    if !holder.is_expired(SystemTime::now()) {
                        return Err(StateError::Locked {
                            path: shared.path(),
                            info: Box::new(holder),
                        });
                    }
                    Some(etag)
                }
            };
            if shared.put(
                "take the state lock",
                shared.lock_key(),
                info.to_bytes(),
                expected,
            )? {
                if let Ok(mut held) = shared.held.lock() {
                    held.push(info.id.clone());
                }
                let handle = S3Lease {
                    shared: Arc::clone(shared),
                };
                return Ok(LockGuard::new(info, request.lease, Box::new(handle)));
            }
        }
        Err(StateError::LockContended {
            path: shared.path(),
        })
    }

    fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        Ok(self.shared.stored_lock()?.map(|(info, _)| info))
    }

    fn force_unlock(&self, id: Option<&str>) -> Result<Option<LockInfo>, StateError> {
        let shared = &self.shared;
        let current = match shared.stored_lock() {
            Ok(current) => current,
            Err(StateError::LockCorrupt { .. }) if id.is_none() => {
                let Some((_, etag)) = shared.get("read the state lock", shared.lock_key())? else {
                    return Ok(None);
                };
                shared.delete("remove the state lock", shared.lock_key(), etag)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let Some((current, etag)) = current else {
            return Ok(None);
        };
        if let Some(id) = id
            && id != current.id
        {
            return Err(StateError::LockMismatch {
                path: shared.path(),
                requested: id.to_string(),
                info: Box::new(current),
            });
        }
        shared.delete("remove the state lock", shared.lock_key(), etag)?;
        Ok(Some(current))
    }

    fn describe(&self) -> String {
        format!(
            "s3 state {} at {}",
            self.shared.display, self.shared.endpoint
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            display: "s3://states/prod.json".into(),
            endpoint: redacted("http://user:pw@127.0.0.1:9000/"),
            bucket: "states".into(),
            region: "us-east-1".into(),
            key: "prod.json".into(),
            jobs: Mutex::new(mpsc::channel().0),
            held: Mutex::new(Vec::new()),
        }
    }

    #[test]
    fn a_server_without_conditional_writes_is_named() {
        let error = shared().fail(
            "write the state",
            Failure::NotImplemented(
                "PutObject: NotImplemented: A header you provided implies functionality that is not \
                 implemented"
                    .into(),
            ),
        );
        let text = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert_eq!(
            text,
            "cannot write the state `s3://states/prod.json`: the S3 server at http://127.0.0.1:9000 does \
             not support conditional writes (If-Match / If-None-Match), which the s3 state backend needs: \
             PutObject: NotImplemented: A header you provided implies functionality that is not implemented"
        );
    }
}
