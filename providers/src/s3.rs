//! S3: buckets of a platform's object store (archives, state).

use crate::kind::ResourceKind;

/// `s3_bucket`: a bucket with versioning, lifecycle and tags. Buckets hold objects: protected.
pub struct Bucket;

impl ResourceKind for Bucket {
    fn name(&self) -> &'static str {
        "s3_bucket"
    }
    fn provider(&self) -> &'static str {
        "s3"
    }
    fn protected(&self) -> bool {
        true
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["endpoint", "name"]
    }
}
