//! The raw archive: every accepted event, as NDJSON objects partitioned by site and day
//! (`site=<id>/day=<YYYY-MM-DD>/<shard>-<seq>.ndjson`), written by each shard's alarm from
//! its pending queue, behind one trait ([`ArchiveSink`]) so that another sink can take R2's
//! place.
//!
//! - [`R2Archive`] (the worker): the `ARCHIVE` R2 bucket. R2 is what the tests and local
//!   runs use (`wrangler dev` simulates it).
//! - [`MemoryArchive`] (native): objects in memory, for the engines' native tests.
//! - Cloudflare Pipelines in production (open beta; no workers-rs binding): a sink whose
//!   `put` sends the object's lines as records to a pipeline binding
//!   (`env.get_binding::<Pipeline>("PIPELINE")`, a wasm-bindgen type with `send(records)`),
//!   the pipeline writing them to R2 as JSON or Parquet, or to an R2 Data Catalog (Iceberg)
//!   table, exactly once. `list` and `get` (a rebuild, exports) then read the pipeline's R2
//!   sink bucket. Miniflare's pipeline binding stores nothing, which is why the tests run
//!   on R2 itself; the shard's code is the same either way.
//!
//! The object names are stable and unique: a shard names an object after its label and
//! the queue number of its first event, and writes it again unchanged when a retry follows
//! a write whose acknowledgement was lost (R2 `put` replaces; same key, same bytes).

/// Where archive objects go and are read back from.
#[allow(async_fn_in_trait)] // one thread per isolate: futures need not be Send
pub trait ArchiveSink {
    /// Writes (or replaces) an object.
    async fn put(&self, key: &str, body: String) -> Result<(), String>;
    /// Up to `limit` keys under `prefix` after `after` (lexicographic order), and whether
    /// more follow.
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, bool), String>;
    /// An object's body, if it exists.
    async fn get(&self, key: &str) -> Result<Option<String>, String>;
}

/// The prefix of a site's objects.
pub fn site_prefix(site: &str) -> String {
    format!("site={site}/")
}

/// The prefix of a site's objects of one day (`YYYY-MM-DD`).
pub fn day_prefix(site: &str, day: &str) -> String {
    format!("site={site}/day={day}/")
}

/// An object's name.
pub fn object_key(site: &str, day: &str, label: &str, seq: i64) -> String {
    format!("site={site}/day={day}/{label}-{seq:012}.ndjson")
}

/// Objects in memory (native tests).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Default)]
pub struct MemoryArchive {
    /// The objects by key.
    pub objects: std::cell::RefCell<std::collections::BTreeMap<String, String>>,
    /// When set, every `put` fails (a sink that is down).
    pub failing: std::cell::Cell<bool>,
}

#[cfg(not(target_arch = "wasm32"))]
impl ArchiveSink for MemoryArchive {
    async fn put(&self, key: &str, body: String) -> Result<(), String> {
        if self.failing.get() {
            return Err("the archive is down".into());
        }
        self.objects.borrow_mut().insert(key.to_owned(), body);
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, bool), String> {
        let objects = self.objects.borrow();
        let mut keys = objects
            .keys()
            .filter(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
            .cloned();
        let out: Vec<String> = keys.by_ref().take(limit).collect();
        let more = keys.next().is_some();
        Ok((out, more))
    }

    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.objects.borrow().get(key).cloned())
    }
}

/// The `ARCHIVE` R2 bucket.
#[cfg(target_arch = "wasm32")]
pub struct R2Archive {
    bucket: worker::Bucket,
}

#[cfg(target_arch = "wasm32")]
impl R2Archive {
    /// The bucket bound as `binding` (`ARCHIVE`).
    pub fn from_env(env: &worker::Env, binding: &str) -> Result<R2Archive, String> {
        env.bucket(binding)
            .map(|bucket| R2Archive { bucket })
            .map_err(|e| format!("no R2 bucket `{binding}`: {e}"))
    }
}

#[cfg(target_arch = "wasm32")]
impl ArchiveSink for R2Archive {
    async fn put(&self, key: &str, body: String) -> Result<(), String> {
        let meta = worker::HttpMetadata {
            content_type: Some("application/x-ndjson".into()),
            ..Default::default()
        };
        self.bucket
            .put(key, body)
            .http_metadata(meta)
            .execute()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, bool), String> {
        let mut b = self
            .bucket
            .list()
            .prefix(prefix)
            .limit(u32::try_from(limit.clamp(1, 1000)).unwrap_or(1000));
        if let Some(a) = after {
            b = b.start_after(a);
        }
        let objects = b.execute().await.map_err(|e| e.to_string())?;
        Ok((
            objects.objects().iter().map(|o| o.key()).collect(),
            objects.truncated(),
        ))
    }

    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        let Some(object) = self
            .bucket
            .get(key)
            .execute()
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        match object.body() {
            Some(body) => body.text().await.map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }
}
