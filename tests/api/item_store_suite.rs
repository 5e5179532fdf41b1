//! The ItemStore specification, run against both backends: SQLite in memory and PostgreSQL (a
//! fresh database for each test, see `postgres.rs`). Both must behave the same; what only one
//! backend has (files, journal mode, migrations, outages) is tested next to it.

use std::time::Duration;

use warp_redis_cache_service::items::{Item, ItemPatch, ItemStore, ListQuery, NewItem};

use crate::support::postgres::TestDatabase;

/// A store under test, and the PostgreSQL database behind it when there is one.
pub struct Fixture {
    pub store: ItemStore,
    _database: Option<TestDatabase>,
}

impl Fixture {
    fn sqlite() -> Self {
        Self {
            store: ItemStore::open(":memory:").expect("in-memory store"),
            _database: None,
        }
    }

    /// `None` when there is no PostgreSQL server (the fixture has said so).
    async fn postgres() -> Option<Self> {
        let database = TestDatabase::create().await?;
        let store = ItemStore::open_postgres(database.url())
            .await
            .expect("open the test database");
        Some(Self {
            store,
            _database: Some(database),
        })
    }
}

macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::cases::$case(&super::Fixture::sqlite().store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(fixture) = super::Fixture::postgres().await {
                        super::cases::$case(&fixture.store).await;
                    }
                }
            )*
        }
    };
}

store_suite!(
    created_item_round_trips_trimmed_with_millisecond_utc_timestamps,
    get_of_a_missing_id_is_none,
    name_filter_ignores_ascii_case_only,
    name_filter_takes_wildcards_literally,
    tag_filter_matches_one_tag_exactly,
    pages_follow_ids_and_total_ignores_paging,
    replace_keeps_created_at_and_refreshes_updated_at,
    patch_changes_only_the_fields_it_sets,
    replace_patch_and_delete_of_a_missing_id_change_nothing,
    delete_removes_the_item_once,
    ids_of_deleted_items_are_never_reused,
    unicode_text_round_trips_and_filters,
    unvalidated_input_is_an_error_or_stored_never_a_panic,
    concurrent_creates_get_distinct_ids,
);

fn new_item(name: &str, tags: &[&str]) -> NewItem {
    NewItem {
        name: name.into(),
        description: format!("about {name}"),
        price: 2.5,
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
    }
}

mod cases {
    use super::*;

    async fn create_all(store: &ItemStore, names: &[&str]) -> Vec<Item> {
        let mut created = Vec::new();
        for name in names {
            created.push(store.create(new_item(name, &[])).await.expect("create"));
        }
        created
    }

    async fn names_matching(store: &ItemStore, q: &str) -> Vec<String> {
        let query = ListQuery {
            q: Some(q.into()),
            ..ListQuery::default()
        };
        let page = store.list(query).await.expect("list");
        page.items.into_iter().map(|item| item.name).collect()
    }

    async fn names_tagged(store: &ItemStore, tag: &str) -> Vec<String> {
        let query = ListQuery {
            tag: Some(tag.into()),
            ..ListQuery::default()
        };
        let page = store.list(query).await.expect("list");
        page.items.into_iter().map(|item| item.name).collect()
    }

    /// RFC 3339 UTC with milliseconds: `2026-11-25T00:10:00.123Z`.
    fn assert_timestamp_shape(timestamp: &str) {
        let digits = |range: std::ops::Range<usize>| {
            timestamp[range].bytes().all(|byte| byte.is_ascii_digit())
        };
        assert_eq!(timestamp.len(), 24, "{timestamp}");
        let separators: Vec<char> = [4, 7, 10, 13, 16, 19, 23]
            .iter()
            .map(|at| timestamp.as_bytes()[*at] as char)
            .collect();
        assert_eq!(
            separators,
            ['-', '-', 'T', ':', ':', '.', 'Z'],
            "{timestamp}"
        );
        assert!(digits(0..4) && digits(5..7) && digits(8..10), "{timestamp}");
        assert!(digits(11..13) && digits(14..16), "{timestamp}");
        assert!(digits(17..19) && digits(20..23), "{timestamp}");
    }

    pub async fn created_item_round_trips_trimmed_with_millisecond_utc_timestamps(
        store: &ItemStore,
    ) {
        let created = store
            .create(new_item("  pen  ", &[" office ", "blue"]))
            .await
            .expect("create");
        assert_eq!(created.name, "pen");
        assert_eq!(created.description, "about   pen  ");
        assert_eq!(created.price, 2.5);
        assert_eq!(created.tags, ["office", "blue"]);
        assert_eq!(created.created_at, created.updated_at);
        assert_timestamp_shape(&created.created_at);
        let fetched = store.get(created.id).await.expect("get");
        assert_eq!(fetched, Some(created));
    }

    pub async fn get_of_a_missing_id_is_none(store: &ItemStore) {
        assert_eq!(store.get(42).await, Ok(None));
        assert_eq!(store.get(i64::MIN).await, Ok(None));
        assert_eq!(store.get(i64::MAX).await, Ok(None));
    }

    pub async fn name_filter_ignores_ascii_case_only(store: &ItemStore) {
        create_all(store, &["Blue Pen", "pencil", "eraser", "Ärger", "ärger"]).await;
        assert_eq!(names_matching(store, "PEN").await, ["Blue Pen", "pencil"]);
        assert_eq!(names_matching(store, "sun").await, Vec::<String>::new());
        // Ä and ä are different letters to the filter: only ASCII case is ignored.
        assert_eq!(names_matching(store, "ÄRG").await, ["Ärger"]);
        assert_eq!(names_matching(store, "äRG").await, ["ärger"]);
    }

    pub async fn name_filter_takes_wildcards_literally(store: &ItemStore) {
        let names = [
            "100% cotton",
            "1000 cotton",
            "snake_case",
            "snakeXcase",
            r"back\slash",
        ];
        create_all(store, &names).await;
        assert_eq!(names_matching(store, "0%").await, ["100% cotton"]);
        assert_eq!(names_matching(store, "e_c").await, ["snake_case"]);
        assert_eq!(names_matching(store, r"\").await, [r"back\slash"]);
        assert_eq!(names_matching(store, "%").await, ["100% cotton"]);
        assert_eq!(names_matching(store, r"\s").await, [r"back\slash"]);
    }

    pub async fn tag_filter_matches_one_tag_exactly(store: &ItemStore) {
        store
            .create(new_item("a", &["rust", "web"]))
            .await
            .expect("a");
        store.create(new_item("b", &["Rust"])).await.expect("b");
        store.create(new_item("c", &["rusty"])).await.expect("c");
        store
            .create(new_item("d", &["web", "rust"]))
            .await
            .expect("d");
        store.create(new_item("e", &["%"])).await.expect("e");
        let query = ListQuery {
            tag: Some("rust".into()),
            ..ListQuery::default()
        };
        let page = store.list(query).await.expect("list");
        let names: Vec<_> = page.items.iter().map(|item| item.name.as_str()).collect();
        assert_eq!(names, ["a", "d"]);
        assert_eq!(page.total, 2);
        assert_eq!(names_tagged(store, "%").await, ["e"]);
        assert_eq!(names_tagged(store, "_ust").await, Vec::<String>::new());
        let both = ListQuery {
            q: Some("D".into()),
            tag: Some("web".into()),
            ..ListQuery::default()
        };
        let page = store.list(both).await.expect("both filters");
        assert_eq!((page.items.len(), page.total), (1, 1));
    }

    pub async fn pages_follow_ids_and_total_ignores_paging(store: &ItemStore) {
        let created = create_all(store, &["a1", "a2", "a3", "a4", "a5", "b6"]).await;
        let page = store
            .list(ListQuery {
                limit: 2,
                offset: 2,
                ..ListQuery::default()
            })
            .await
            .expect("page");
        assert_eq!(page.items, created[2..4]);
        assert_eq!((page.total, page.limit, page.offset), (6, 2, 2));
        let filtered = ListQuery {
            limit: 3,
            offset: 3,
            q: Some("a".into()),
            tag: None,
        };
        let page = store.list(filtered).await.expect("filtered page");
        assert_eq!(page.items, created[3..5]);
        assert_eq!(page.total, 5);
        let past_the_end = ListQuery {
            offset: 100,
            ..ListQuery::default()
        };
        let page = store.list(past_the_end).await.expect("empty page");
        assert!(page.items.is_empty());
        assert_eq!(page.total, 6);
    }

    pub async fn replace_keeps_created_at_and_refreshes_updated_at(store: &ItemStore) {
        let created = store.create(new_item("pen", &["a"])).await.expect("create");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let replacement = NewItem {
            name: " quill ".into(),
            description: String::new(),
            price: 9.0,
            tags: vec![],
        };
        let replaced = store
            .replace(created.id, replacement)
            .await
            .expect("replace")
            .expect("exists");
        assert_eq!((replaced.id, replaced.name.as_str()), (created.id, "quill"));
        assert_eq!((replaced.description.as_str(), replaced.price), ("", 9.0));
        assert!(replaced.tags.is_empty());
        assert_eq!(replaced.created_at, created.created_at);
        assert!(replaced.updated_at > created.updated_at);
        assert_timestamp_shape(&replaced.updated_at);
        assert_eq!(store.get(created.id).await, Ok(Some(replaced)));
    }

    pub async fn patch_changes_only_the_fields_it_sets(store: &ItemStore) {
        let created = store.create(new_item("pen", &["a"])).await.expect("create");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let patch = ItemPatch {
            price: Some(0.0),
            tags: Some(vec![" b ".into()]),
            ..ItemPatch::default()
        };
        let patched = store
            .patch(created.id, patch)
            .await
            .expect("patch")
            .expect("exists");
        let expected = Item {
            price: 0.0,
            tags: vec!["b".into()],
            updated_at: patched.updated_at.clone(),
            ..created.clone()
        };
        assert_eq!(patched, expected);
        assert!(patched.updated_at > created.updated_at);
        let renamed = ItemPatch {
            name: Some(" nib ".into()),
            description: Some(String::new()),
            ..ItemPatch::default()
        };
        let renamed = store
            .patch(created.id, renamed)
            .await
            .expect("patch")
            .expect("exists");
        assert_eq!(
            (renamed.name.as_str(), renamed.description.as_str()),
            ("nib", "")
        );
        assert_eq!((renamed.price, renamed.tags), (0.0, vec!["b".to_string()]));
        let untagged = ItemPatch {
            tags: Some(Vec::new()),
            ..ItemPatch::default()
        };
        let untagged = store.patch(created.id, untagged).await.expect("patch");
        assert_eq!(untagged.map(|item| item.tags), Some(Vec::new()));
    }

    pub async fn replace_patch_and_delete_of_a_missing_id_change_nothing(store: &ItemStore) {
        let kept = store.create(new_item("pen", &[])).await.expect("create");
        let missing = kept.id + 1;
        assert_eq!(store.replace(missing, new_item("x", &[])).await, Ok(None));
        let patch = ItemPatch {
            price: Some(1.0),
            ..ItemPatch::default()
        };
        assert_eq!(store.patch(missing, patch).await, Ok(None));
        assert_eq!(store.delete(missing).await, Ok(false));
        let page = store.list(ListQuery::default()).await.expect("list");
        assert_eq!(page.items, [kept]);
    }

    pub async fn delete_removes_the_item_once(store: &ItemStore) {
        let created = store.create(new_item("pen", &[])).await.expect("create");
        assert_eq!(store.delete(created.id).await, Ok(true));
        assert_eq!(store.get(created.id).await, Ok(None));
        assert_eq!(store.delete(created.id).await, Ok(false));
        let page = store.list(ListQuery::default()).await.expect("list");
        assert_eq!((page.items.len(), page.total), (0, 0));
    }

    pub async fn ids_of_deleted_items_are_never_reused(store: &ItemStore) {
        let created = create_all(store, &["a", "b"]).await;
        assert!(created[0].id > 0);
        assert!(created[1].id > created[0].id);
        store.delete(created[1].id).await.expect("delete");
        let next = store.create(new_item("c", &[])).await.expect("create");
        assert!(next.id > created[1].id, "{} reused or went back", next.id);
    }

    pub async fn unicode_text_round_trips_and_filters(store: &ItemStore) {
        let name = format!("日本茶 🍵 {}", "é".repeat(190));
        let item = NewItem {
            name: format!(" {name}\u{2003}"),
            description: "naïve café, e\u{301} combining, \u{1F600}, 中文, עברית".into(),
            price: 3.25,
            tags: vec![" thé ".into(), "🍵".into(), "ß".repeat(50)],
        };
        let created = store.create(item).await.expect("create");
        // Rust's trim, Unicode whitespace included (U+2003 EM SPACE).
        assert_eq!(created.name, name);
        assert_eq!(created.tags[0], "thé");
        assert_eq!(store.get(created.id).await, Ok(Some(created.clone())));
        assert_eq!(
            names_matching(store, "本茶 🍵").await,
            std::slice::from_ref(&name)
        );
        assert_eq!(names_tagged(store, "🍵").await, std::slice::from_ref(&name));
        assert_eq!(names_tagged(store, "THÉ").await, Vec::<String>::new());
        assert_eq!(names_tagged(store, &"ß".repeat(50)).await, [name]);
    }

    pub async fn unvalidated_input_is_an_error_or_stored_never_a_panic(store: &ItemStore) {
        let nan = NewItem {
            price: f64::NAN,
            ..new_item("pen", &[])
        };
        store.create(nan).await.expect_err("NaN price");
        let odd = new_item("", &["", "dup", "dup"]);
        let stored = store.create(odd).await.expect("stored as given");
        assert_eq!(stored.tags, ["", "dup", "dup"]);
        let extreme = ListQuery {
            limit: 0,
            offset: u64::MAX,
            q: Some(r"%_\".into()),
            tag: Some(String::new()),
        };
        let page = store.list(extreme).await.expect("odd query");
        assert_eq!((page.items.len(), page.total), (0, 0));
        let empty_tag = ListQuery {
            limit: 0,
            tag: Some(String::new()),
            ..ListQuery::default()
        };
        let page = store.list(empty_tag).await.expect("empty tag");
        assert_eq!((page.items.len(), page.total), (0, 1));
        let huge = NewItem {
            price: f64::MAX,
            ..new_item("dear", &[])
        };
        let stored = store.create(huge).await.expect("stored as given");
        assert_eq!(store.get(stored.id).await, Ok(Some(stored)));
    }

    pub async fn concurrent_creates_get_distinct_ids(store: &ItemStore) {
        let creates = (0..16).map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.create(new_item(&format!("n{n}"), &[])).await })
        });
        let mut ids = Vec::new();
        for create in creates {
            ids.push(create.await.expect("task").expect("create").id);
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 16);
        let page = store
            .list(ListQuery {
                limit: 100,
                ..ListQuery::default()
            })
            .await
            .expect("list");
        assert_eq!(page.total, 16);
    }
}
