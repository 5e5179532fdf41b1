//! `seed`: create the items of a file that the service does not have yet, then warm the cache.
//!
//! Idempotent by name: a record matches an item when their names are equal after trimming
//! (the service stores names trimmed; case matters). Before creating anything, seed lists every
//! existing item and skips the records whose name is already there, and those that repeat a
//! name from earlier in the same file. It never changes an existing item. So a second run
//! creates nothing, and a run that stopped halfway is finished by running it again.
//!
//! Bad records (see [`records`](super::records::parse)) are reported and the others loaded; with
//! `strict`, one bad record means nothing is written at all.

use std::collections::HashMap;
use std::path::Path;

use super::batch;
use super::client::Client;
use super::error::RequestError;
use super::records::{self, FileError, Location, Record};
use super::summary::{HitRate, Summary};
use super::warm::{self, WarmOptions};
use crate::items::Item;

/// How to seed.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Requests in flight at once, and list pages to warm afterwards.
    pub warm: WarmOptions,
    /// Refuse the whole file when any record is bad.
    pub strict: bool,
}

/// Why a seed could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The file cannot be read or is not an item file.
    #[error(transparent)]
    File(#[from] FileError),
    /// The existing items could not be listed, so matching by name is impossible.
    #[error("listing the existing items: {0}")]
    Listing(#[from] RequestError),
}

/// Loads the file at `path` into the service and warms what it holds.
pub async fn run(
    client: &Client,
    path: &Path,
    options: &SeedOptions,
) -> Result<Summary, SeedError> {
    let file = records::read(path)?;
    let shown = path.display();
    let mut summary = Summary::default();
    for error in &file.errors {
        summary.fail(format_args!("{shown} {error}"));
    }
    if options.strict && !file.errors.is_empty() {
        eprintln!("error: --strict: {shown} has bad records, so nothing was written");
        summary.hit_rate = HitRate::Unknown("nothing was done".into());
        return Ok(summary);
    }
    let existing = client.all_items().await?;
    let plan = Plan::new(&file.records, &existing);
    summary.skipped = plan.skipped;
    let mut ids = plan.existing_ids;
    let creates = batch::run(
        "create",
        plan.to_create.len(),
        options.warm.concurrency,
        |index| client.create_item(&file.records[plan.to_create[index]].item),
    )
    .await;
    for (index, outcome) in creates.finished {
        match outcome {
            Ok(item) => {
                summary.created += 1;
                ids.push(item.id);
            }
            Err(err) => {
                let location = file.records[plan.to_create[index]].location;
                summary.fail(format_args!("{shown} {location}: {err}"));
            }
        }
    }
    summary.abandon(creates.abandoned, "records");
    if creates.abandoned == 0 && warm::warm(client, &ids, &options.warm, &mut summary).await {
        summary.hit_rate = HitRate::read(client).await;
    }
    Ok(summary)
}

/// Which records to create, and the ids of the items that records matched.
#[derive(Debug, PartialEq)]
struct Plan {
    /// Indexes into the records, in file order.
    to_create: Vec<usize>,
    /// Items that exist already under a record's name (warmed all the same).
    existing_ids: Vec<i64>,
    /// Records not created: their name exists, or came earlier in the file.
    skipped: usize,
}

impl Plan {
    fn new(records: &[Record], existing: &[Item]) -> Self {
        let by_name: HashMap<&str, i64> = existing
            .iter()
            .map(|item| (item.name.trim(), item.id))
            .collect();
        let mut first_seen: HashMap<&str, Location> = HashMap::new();
        let mut plan = Plan {
            to_create: Vec::new(),
            existing_ids: Vec::new(),
            skipped: 0,
        };
        for (index, record) in records.iter().enumerate() {
            let name = record.item.name.trim();
            if let Some(&id) = by_name.get(name) {
                plan.skipped += 1;
                if !plan.existing_ids.contains(&id) {
                    plan.existing_ids.push(id);
                }
            } else if let Some(first) = first_seen.get(name) {
                plan.skipped += 1;
                eprintln!("note: {}: same name as {first}, skipped", record.location);
            } else {
                first_seen.insert(name, record.location);
                plan.to_create.push(index);
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::NewItem;

    fn record(line: usize, name: &str) -> Record {
        Record {
            location: Location::Line(line),
            item: NewItem {
                name: name.into(),
                description: String::new(),
                price: 1.0,
                tags: Vec::new(),
            },
        }
    }

    fn item(id: i64, name: &str) -> Item {
        Item {
            id,
            name: name.into(),
            description: String::new(),
            price: 1.0,
            tags: Vec::new(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn records_match_existing_items_by_trimmed_exact_name() {
        let records = [
            record(1, "Desk Lamp"),
            record(2, "  Desk Lamp "),
            record(3, "desk lamp"),
            record(4, "Mug"),
        ];
        let plan = Plan::new(&records, &[item(7, "Desk Lamp")]);
        assert_eq!(
            plan,
            Plan {
                to_create: vec![2, 3],
                existing_ids: vec![7],
                skipped: 2
            }
        );
    }

    #[test]
    fn a_name_repeated_in_the_file_is_created_once() {
        let records = [record(1, "Mug"), record(2, "Pen"), record(3, " Mug")];
        let plan = Plan::new(&records, &[]);
        assert_eq!((plan.to_create, plan.skipped), (vec![0, 1], 1));
    }
}
