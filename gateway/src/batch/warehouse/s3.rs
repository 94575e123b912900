//! A warehouse on S3 or an S3-compatible server (`s3://bucket/prefix`).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::prefix::PrefixStore;
use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// Settings of `warehouse = "s3://bucket/prefix"` (`[s3]`). Each one unset
/// falls back to the usual `AWS_*` environment variable.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The S3 API's address, for an S3-compatible server
    /// (`http://127.0.0.1:9000`). Unset: `AWS_ENDPOINT`, else AWS itself.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The bucket's region. Unset: `AWS_REGION` or `AWS_DEFAULT_REGION`,
    /// else us-east-1.
    #[serde(default)]
    pub region: Option<String>,
    /// Access key. Unset: `AWS_ACCESS_KEY_ID`, else the instance's role.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret of the access key. Unset: `AWS_SECRET_ACCESS_KEY`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Whether a plain `http://` endpoint is allowed (a server on this
    /// host or a private network). False: as `AWS_ALLOW_HTTP` says.
    #[serde(default)]
    pub allow_http: bool,
}

/// The prefixed store, the bucket's own, and the prefix.
type Opened = (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, String);

/// The stores of `s3://bucket[/prefix]`: one whose paths are relative to
/// the prefix, and the bucket's own with the prefix (empty or ending in
/// `/`). The query engine reads the bucket's own: `PrefixStore` (0.13)
/// answers `head` with the full path, which the engine then does not
/// recognise as the file it asked for.
pub fn open(url: &str, rest: &str, config: &S3Config) -> Result<Opened> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::UnsupportedUrl(url.to_owned()));
    }
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if config.allow_http {
        builder = builder.with_allow_http(true);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &config.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &config.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &config.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    let bucket: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Ok((bucket.clone(), bucket, String::new()));
    }
    let store = Arc::new(PrefixStore::new(bucket.clone(), prefix));
    Ok((store, bucket, format!("{prefix}/")))
}
