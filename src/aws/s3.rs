//! S3 access: URLs, reads, streaming downloads and listings.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use aws_sdk_s3::Client;

use super::{block_on, describe_error, sdk_config};
use crate::progress::Progress;

/// The old tool's endpoint override; with it, path-style addressing.
pub const S3_ENDPOINT_ENV: &str = "S3_ENDPOINT";

/// `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    pub fn parse(url: &str) -> Result<S3Url> {
        let Some(rest) = url.strip_prefix("s3://") else {
            bail!("'{url}' is not an s3:// URL");
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("'{url}' has no bucket name");
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// This URL with `name` appended as a path component.
    pub fn join(&self, name: &str) -> S3Url {
        let key = if self.key.is_empty() || self.key.ends_with('/') {
            format!("{}{name}", self.key)
        } else {
            format!("{}/{name}", self.key)
        };
        S3Url {
            bucket: self.bucket.clone(),
            key,
        }
    }
}

impl TryFrom<String> for S3Url {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<S3Url> {
        S3Url::parse(&s)
    }
}

impl From<S3Url> for String {
    fn from(u: S3Url) -> String {
        u.to_string()
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// The shared S3 client, honouring `S3_ENDPOINT`.
pub fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut builder = aws_sdk_s3::config::Builder::from(sdk_config());
        if let Some(endpoint) = std::env::var(S3_ENDPOINT_ENV)
            .ok()
            .filter(|e| !e.is_empty())
        {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        Client::from_conf(builder.build())
    })
}

/// The object's bytes, or `None` if it does not exist. For small objects
/// (configs, context, state); releases go through [`download`].
pub fn get_bytes(url: &S3Url) -> Result<Option<Vec<u8>>> {
    Ok(match get_if_changed(url, None)? {
        Fetched::Found { bytes, .. } => Some(bytes),
        Fetched::Missing | Fetched::NotModified => None,
    })
}

/// The object's bytes, or `None` if it does not exist; an error when it is
/// larger than `max` bytes, before its body is read.
pub fn get_bounded(url: &S3Url, max: u64) -> Result<Option<Vec<u8>>> {
    let client = client();
    Ok(match block_on(fetch(client, url, None, max))? {
        Fetched::Found { bytes, .. } => Some(bytes),
        Fetched::Missing | Fetched::NotModified => None,
    })
}

/// Whether the object exists.
pub fn exists(url: &S3Url) -> Result<bool> {
    let client = client();
    block_on(async {
        let resp = client
            .head_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .send()
            .await;
        match resp {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => bail!("cannot check {url}: {}", describe_error(&e)),
        }
    })
}

/// A download's part size and how many parts are fetched at once: what
/// `aws s3 cp` uses. One S3 connection rarely fills a machine's network.
const PART: u64 = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 10;

/// Downloads the object into `dest` (a release may be 1 GB) in parts of
/// [`PART`] bytes, [`PARTS_IN_FLIGHT`] at a time, each streamed to its place
/// in a temporary file that is renamed into place once complete. Every part
/// after the first must come from the same version of the object (its
/// ETag), so a release replaced mid-download fails instead of mixing. On a
/// terminal a progress bar labelled `what` shows how far it is.
pub fn download(url: &S3Url, dest: &Path, what: &str) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let file = Arc::new(
        tmp.as_file()
            .try_clone()
            .with_context(|| format!("writing {}", dest.display()))?,
    );
    let client = client().clone();
    block_on(download_parts(client, url.clone(), file, dest, what))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", dest.display()))?;
    tmp.persist(dest)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(())
}

async fn download_parts(
    client: Client,
    url: S3Url,
    file: Arc<File>,
    dest: &Path,
    what: &str,
) -> Result<()> {
    // `len` bytes from `from` on.
    let part = |from: u64, len: u64| {
        client
            .get_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .range(format!("bytes={from}-{}", from + len - 1))
    };
    // The first part also tells the object's size and version.
    let first = match part(0, PART).send().await {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
            bail!("{url} does not exist")
        }
        // An empty object has no byte 0 to ask for.
        Err(e) if status_of(&e) == Some(416) => return Ok(()),
        Err(e) => bail!("cannot download {url}: {}", describe_error(&e)),
    };
    // Without a Content-Range the server sent the whole object.
    let (total, first_len) = match first.content_range() {
        Some(range) => {
            let total = object_size(range).with_context(|| {
                format!("cannot download {url}: unexpected Content-Range '{range}'")
            })?;
            (total, total.min(PART))
        }
        None => {
            let total = first
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0);
            (total, total)
        }
    };
    let etag = first.e_tag().map(str::to_string);
    let progress = Arc::new(Progress::bytes(what, Some(total)));
    let mut parts = tokio::task::JoinSet::new();
    parts.spawn(write_part(
        first.body,
        file.clone(),
        0,
        first_len,
        progress.clone(),
    ));
    let mut next = first_len;
    loop {
        while next < total && parts.len() < PARTS_IN_FLIGHT {
            let len = (total - next).min(PART);
            let mut req = part(next, len);
            if let Some(etag) = &etag {
                req = req.if_match(etag);
            }
            let (file, progress) = (file.clone(), progress.clone());
            parts.spawn(async move {
                match req.send().await {
                    Ok(out) => write_part(out.body, file, next, len, progress).await,
                    Err(e) if status_of(&e) == Some(412) => Err(PartError::Changed),
                    Err(e) => Err(PartError::Failed(describe_error(&e))),
                }
            });
            next += len;
        }
        let Some(done) = parts.join_next().await else {
            return Ok(());
        };
        // Returning drops the other parts: they stop where they are.
        match done {
            Ok(Ok(())) => {}
            Ok(Err(PartError::Changed)) => {
                bail!("{url} changed while it was downloaded: run the command again")
            }
            Ok(Err(PartError::Write(e))) => {
                return Err(e).with_context(|| format!("writing {}", dest.display()))
            }
            Ok(Err(PartError::Failed(why))) => bail!("cannot download {url}: {why}"),
            Err(e) => bail!("downloading {url}: a part was lost: {e}"),
        }
    }
}

/// Why a part of a download failed.
enum PartError {
    /// The object is no longer the version the first part came from.
    Changed,
    Write(std::io::Error),
    Failed(String),
}

/// Streams one part's body to `offset` in `file`; it must hold exactly
/// `len` bytes.
async fn write_part(
    mut body: aws_sdk_s3::primitives::ByteStream,
    file: Arc<File>,
    offset: u64,
    len: u64,
    progress: Arc<Progress>,
) -> Result<(), PartError> {
    let mut at = offset;
    let end = offset + len;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| PartError::Failed(describe_error(&e)))?
    {
        if at.saturating_add(chunk.len() as u64) > end {
            return Err(PartError::Failed(format!(
                "the server sent more than the {len} bytes asked for at offset {offset}"
            )));
        }
        file.write_all_at(&chunk, at).map_err(PartError::Write)?;
        at += chunk.len() as u64;
        progress.add(chunk.len() as u64);
    }
    if at != end {
        return Err(PartError::Failed(format!(
            "the connection ended {} bytes short of the part at offset {offset}",
            end - at
        )));
    }
    Ok(())
}

/// The object's size from a `Content-Range: bytes <from>-<to>/<size>`.
fn object_size(range: &str) -> Option<u64> {
    range
        .strip_prefix("bytes ")?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

/// One object of a listing.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub last_modified: Option<SystemTime>,
}

/// Every object under `prefix` (all pages).
pub fn list(url: &S3Url) -> Result<Vec<ObjectInfo>> {
    list_under(url, &url.key, None)
}

/// The objects directly in the folder `url` (all pages), each named by
/// what follows the folder's `/`: `s3://b/p/shop` holds `p/shop/x.zip`,
/// never `p/shop-staging/y.zip` (a prefix matched as text) nor
/// `p/shop/archive/z.zip` (a subfolder).
pub fn list_folder(url: &S3Url) -> Result<Vec<ObjectInfo>> {
    let folder = match url.key.as_str() {
        "" => String::new(),
        k if k.ends_with('/') => k.to_string(),
        k => format!("{k}/"),
    };
    let objects = list_under(url, &folder, Some("/"))?;
    Ok(objects
        .into_iter()
        .filter_map(|o| {
            let name = o.key.strip_prefix(&folder)?;
            (!name.is_empty() && !name.contains('/')).then(|| ObjectInfo {
                key: name.to_string(),
                last_modified: o.last_modified,
            })
        })
        .collect())
}

fn list_under(url: &S3Url, prefix: &str, delimiter: Option<&str>) -> Result<Vec<ObjectInfo>> {
    let client = client();
    block_on(async {
        let mut objects = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(&url.bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| anyhow::anyhow!("cannot list {url}: {}", describe_error(&e)))?;
            for obj in page.contents() {
                objects.push(ObjectInfo {
                    key: obj.key().unwrap_or_default().to_string(),
                    last_modified: obj
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok()),
                });
            }
        }
        Ok(objects)
    })
}

/// The result of a conditional read.
#[derive(Debug)]
pub enum Fetched {
    Missing,
    /// Unchanged since the ETag given (HTTP 304): no body was sent.
    NotModified,
    Found {
        bytes: Vec<u8>,
        etag: String,
        last_modified: Option<SystemTime>,
    },
}

/// Reads an object unless its ETag is still `known` (a conditional GET:
/// an unchanged object costs one small request and no body).
pub fn get_if_changed(url: &S3Url, known: Option<&str>) -> Result<Fetched> {
    let client = client();
    block_on(fetch(client, url, known, MAX_DOCUMENT))
}

/// The most c2 reads of one document in S3 (the config, a context source,
/// a state, a slave report, a history event): a larger object is an error,
/// found before its body is read, so a huge object cannot exhaust memory.
pub const MAX_DOCUMENT: u64 = 64 << 20;

/// Reads several small objects at once (at most 32 requests in flight):
/// listing a fleet's reports one by one would take a round trip per slave.
pub fn get_many(urls: &[S3Url]) -> Vec<Result<Fetched>> {
    const IN_FLIGHT: usize = 32;
    let client = client().clone();
    block_on(async move {
        let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut set = tokio::task::JoinSet::new();
        for (i, url) in urls.iter().cloned().enumerate() {
            let (client, limit) = (client.clone(), limit.clone());
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (i, fetch(&client, &url, None, MAX_DOCUMENT).await)
            });
        }
        let mut out: Vec<Option<Result<Fetched>>> = (0..urls.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, r)) => out[i] = Some(r),
                Err(e) => anyhow::bail!("a concurrent S3 read failed: {e}"),
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("a concurrent S3 read was lost"))))
            .collect())
    })
    .unwrap_or_else(|e| vec![Err(e)])
}

/// Reads an object of at most `max` bytes (unless its ETag is `known`).
async fn fetch(client: &Client, url: &S3Url, known: Option<&str>, max: u64) -> Result<Fetched> {
    let mut req = client.get_object().bucket(&url.bucket).key(&url.key);
    if let Some(etag) = known {
        req = req.if_none_match(etag);
    }
    match req.send().await {
        Ok(mut out) => {
            let too_large = || crate::fsutil::TooLarge::error(url, max);
            if out
                .content_length()
                .is_some_and(|n| u64::try_from(n).map_or(true, |n| n > max))
            {
                return Err(too_large());
            }
            let etag = out.e_tag().unwrap_or_default().to_string();
            let last_modified = out
                .last_modified()
                .and_then(|t| SystemTime::try_from(*t).ok());
            // The length announced may lie: the bytes read are counted too.
            let mut bytes = Vec::new();
            while let Some(chunk) = out.body.next().await {
                let chunk = chunk.with_context(|| format!("reading {url}"))?;
                if (bytes.len() + chunk.len()) as u64 > max {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(Fetched::Found {
                bytes,
                etag,
                last_modified,
            })
        }
        Err(e) if status_of(&e) == Some(304) => Ok(Fetched::NotModified),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(Fetched::Missing),
        Err(e) => bail!("cannot read {url}: {}", describe_error(&e)),
    }
}

/// The precondition of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    None,
    /// Only if the object still has this ETag (`If-Match`).
    Matches(String),
    /// Only if there is no object yet (`If-None-Match: *`).
    Absent,
}

/// Writes an object; with a precondition, returns `Ok(false)` when someone
/// else changed it first (HTTP 412, or 409 for a concurrent conditional write).
pub fn put(url: &S3Url, bytes: Vec<u8>, pre: &Precondition) -> Result<bool> {
    let client = client();
    block_on(async {
        let mut req = client
            .put_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .content_type("application/json")
            .body(bytes.into());
        match pre {
            Precondition::None => {}
            Precondition::Matches(etag) => req = req.if_match(etag),
            Precondition::Absent => req = req.if_none_match("*"),
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if matches!(status_of(&e), Some(412) | Some(409)) => Ok(false),
            Err(e) => bail!("cannot write {url}: {}", describe_error(&e)),
        }
    })
}

/// Uploads the file at `path` as the object, streaming it from disk (a
/// release may be hundreds of MB); with a precondition, `Ok(false)` when it
/// does not hold. One PUT: at most 5 GiB, S3's limit for it.
pub fn put_file(url: &S3Url, path: &Path, content_type: &str, pre: &Precondition) -> Result<bool> {
    let client = client();
    block_on(async {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut req = client
            .put_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .content_type(content_type)
            .body(body);
        match pre {
            Precondition::None => {}
            Precondition::Matches(etag) => req = req.if_match(etag),
            Precondition::Absent => req = req.if_none_match("*"),
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if matches!(status_of(&e), Some(412) | Some(409)) => Ok(false),
            Err(e) => bail!(
                "cannot upload {} to {url}: {}",
                path.display(),
                describe_error(&e)
            ),
        }
    })
}

/// Copies an object server-side (no bytes pass through c2); `Ok(false)`
/// when the source does not exist.
pub fn copy(from: &S3Url, to: &S3Url) -> Result<bool> {
    let client = client();
    let source = format!("{}/{}", from.bucket, percent_encode(&from.key));
    block_on(async {
        let resp = client
            .copy_object()
            .bucket(&to.bucket)
            .key(&to.key)
            .copy_source(source)
            .send()
            .await;
        match resp {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => bail!("cannot copy {from} to {to}: {}", describe_error(&e)),
        }
    })
}

/// A key as the `x-amz-copy-source` header wants it: URL-encoded, `/` kept.
fn percent_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn delete(url: &S3Url) -> Result<()> {
    let client = client();
    block_on(async {
        client
            .delete_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("cannot delete {url}: {}", describe_error(&e)))
    })
}

fn status_of<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> Option<u16>
where
    R: HttpStatus,
{
    e.raw_response().map(HttpStatus::status_code)
}

/// The HTTP status of a raw SDK response.
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_size_is_read_from_a_content_range() {
        assert_eq!(object_size("bytes 0-8388607/104857600"), Some(104_857_600));
        assert_eq!(
            object_size("bytes 0-9/18446744073709551615"),
            Some(u64::MAX)
        );
        for bad in [
            "bytes 0-9/*",
            "bytes 0-9/-1",
            "0-9/10",
            "bytes 0-9/99999999999999999999",
        ] {
            assert_eq!(object_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn copy_sources_are_url_encoded_keeping_slashes() {
        assert_eq!(
            percent_encode("rel/.c2-pruned/shop+1.5~a_b.zip"),
            "rel/.c2-pruned/shop%2B1.5~a_b.zip"
        );
        assert_eq!(percent_encode("a%b?c&é"), "a%25b%3Fc%26%C3%A9");
    }
}
