//! The lead directory of a site whose events live in shards (issue 14's "leads across
//! shards"): for now the site's own D1 rows ([`crate::store::directory`]). A shard tells
//! it, after each batch that changes a linked visitor, what changed
//! ([`crate::shard::msg::VisitorSync`]) through [`D1Directory`], the shard's
//! [`DirectoryLink`]; a failure leaves the visitor dirty in the shard and its alarm sends
//! the full state later (`shard::archive::deliver`, `retry_dirty`).

use crate::shard::archive::DirectoryLink;
use crate::shard::msg::{SyncAnswer, VisitorSync};
use crate::store::Store;

/// The directory of one site in D1.
pub struct D1Directory {
    store: Store,
    site: String,
}

impl D1Directory {
    /// The directory of `site` (the worker's `DB` binding).
    pub fn new(store: Store, site: &str) -> D1Directory {
        D1Directory {
            store,
            site: site.to_owned(),
        }
    }
}

impl DirectoryLink for D1Directory {
    async fn sync(&self, msg: &VisitorSync) -> Result<SyncAnswer, String> {
        self.store
            .apply_sync(&self.site, msg)
            .await
            .map_err(|e| e.message)
    }
}
