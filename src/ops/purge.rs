//! `purge`: invalidate entries by key, by tag or a whole namespace through `POST /cache/purge`,
//! with `--dry-run` to count what would go first.

use serde_json::json;

use super::client::Client;
use super::error::RequestError;
use crate::routes::purge::PurgeResponse;
use crate::wording::count_with;
use warp_redis_cache::Namespace;

/// What to purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeTarget {
    /// These keys and tags of one namespace.
    Entries {
        /// The namespace.
        namespace: Namespace,
        /// Entry keys, as `cachectl keys` shows them.
        keys: Vec<String>,
        /// Tags.
        tags: Vec<String>,
    },
    /// Every entry of a namespace.
    Namespace(Namespace),
}

/// A purge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeOptions {
    /// What.
    pub target: PurgeTarget,
    /// Mark stale (served while refreshed) rather than dead.
    pub soft: bool,
    /// Count only; change nothing.
    pub dry_run: bool,
}

impl PurgeOptions {
    /// The body of `POST /cache/purge`.
    pub fn body(&self) -> serde_json::Value {
        match &self.target {
            PurgeTarget::Entries {
                namespace,
                keys,
                tags,
            } => json!({
                "namespace": namespace.as_str(), "keys": keys, "tags": tags,
                "soft": self.soft, "dry_run": self.dry_run,
            }),
            PurgeTarget::Namespace(namespace) => json!({
                "namespaces": [namespace.as_str()], "soft": self.soft, "dry_run": self.dry_run,
            }),
        }
    }
}

/// Sends the purge.
pub async fn run(client: &Client, options: &PurgeOptions) -> Result<PurgeResponse, RequestError> {
    client.purge(&options.body()).await
}

/// The lines printed for an answer: one per target, with counts on a dry run.
pub fn describe(answer: &PurgeResponse) -> String {
    let verb = match (answer.dry_run, answer.soft) {
        (true, true) => "would soft-purge",
        (true, false) => "would purge",
        (false, true) => "soft-purged",
        (false, false) => "purged",
    };
    let mut lines = Vec::new();
    let entries = |n: Option<u64>| match n {
        Some(n) => format!(": {}", count_with(n, "live entry", "live entries")),
        None => String::new(),
    };
    for ns in &answer.namespaces {
        lines.push(format!(
            "{verb} namespace {}{}",
            ns.namespace,
            entries(ns.entries)
        ));
    }
    for tag in &answer.tags {
        lines.push(format!(
            "{verb} tag {} of {}{}",
            tag.tag,
            tag.namespace,
            entries(tag.entries)
        ));
    }
    for key in &answer.keys {
        let state = match (answer.dry_run, key.existed) {
            (true, true) => "live",
            (true, false) => "no live entry",
            (false, true) => "was there",
            (false, false) => "was not there",
        };
        lines.push(format!(
            "{verb} key {} of {} ({state})",
            key.key, key.namespace
        ));
    }
    if answer.dry_run {
        lines.push("dry run: nothing changed".into());
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::purge::{PurgedKey, PurgedTag};

    #[test]
    fn a_dry_run_says_what_would_go_and_that_nothing_changed() {
        let answer = PurgeResponse {
            dry_run: true,
            soft: false,
            namespaces: Vec::new(),
            tags: vec![PurgedTag {
                namespace: "items".into(),
                tag: "item:1".into(),
                entries: Some(1),
            }],
            keys: vec![PurgedKey {
                namespace: "items".into(),
                key: "GET:/items/2".into(),
                existed: true,
            }],
        };
        assert_eq!(
            describe(&answer),
            "would purge tag item:1 of items: 1 live entry\n\
             would purge key GET:/items/2 of items (live)\n\
             dry run: nothing changed"
        );
    }

    #[test]
    fn the_body_names_keys_and_tags_of_a_namespace_or_a_whole_namespace() {
        let items = Namespace::new("items").expect("valid");
        let entries = PurgeOptions {
            target: PurgeTarget::Entries {
                namespace: items.clone(),
                keys: vec!["GET:/items/1".into()],
                tags: Vec::new(),
            },
            soft: true,
            dry_run: true,
        };
        assert_eq!(entries.body()["keys"][0], "GET:/items/1");
        assert_eq!(entries.body()["dry_run"], true);
        let whole = PurgeOptions {
            target: PurgeTarget::Namespace(items),
            soft: false,
            dry_run: false,
        };
        assert_eq!(whole.body()["namespaces"][0], "items");
    }
}
