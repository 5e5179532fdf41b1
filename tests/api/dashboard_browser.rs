//! The dashboard in a real headless browser (Debian's chromium + chromedriver): without the
//! token it shows the auth error and no data; with it, live numbers that move with traffic, the
//! namespace table and chart, a key browser that pages through 100,000 keys and opens an
//! entry, and a purge that shows its dry-run count and changes nothing until confirmed.
//!
//! Leaves a screenshot at `target/tmp/dashboard.png` (the README's `docs/dashboard.png` is a
//! copy). Skips, saying so loudly, only when chromium or chromedriver is not installed;
//! scripts/test.sh installs both.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::webdriver::Browser;
use crate::support::{spawn_app_with, x_cache, RedisServer, TestApp};

const TOKEN: &str = "dashboard-test-token";
const BULK_KEYS: usize = 100_000;

fn number_in(text: &str) -> Option<u64> {
    text.replace(',', "").trim().parse().ok()
}

async fn admin_get(app: &TestApp, path: &str) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let response = app
        .request(Method::GET, path, &[("authorization", &auth)])
        .await;
    response.json().await.expect("JSON")
}

/// Stores `BULK_KEYS` entries of namespace `bulk` straight into Redis, for the key browser.
fn fill_bulk_namespace(redis: &RedisServer) {
    let mut connection = redis.client().get_connection().expect("connection");
    for chunk in (0..BULK_KEYS).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET")
                .arg(format!("wrc:bulk:GET:/bulk/{i}"))
                .arg("x")
                .arg("EX")
                .arg(3600)
                .ignore();
        }
        pipe.query::<()>(&mut connection).expect("bulk keys");
    }
}

#[tokio::test]
async fn the_dashboard_shows_live_numbers_browses_keys_and_purges_after_a_dry_run() {
    let Some(browser) = Browser::start().await else {
        eprintln!(
            "\n*** SKIPPED the dashboard browser test: chromium and chromedriver are not \
             installed. scripts/test.sh installs them (apt-get install chromium \
             chromium-driver). ***\n"
        );
        return;
    };
    let app = spawn_app_with(|settings| settings.admin.token = Some(TOKEN.into())).await;
    let mut ids = Vec::new();
    for name in ["lamp", "desk", "chair", "mug", "pen"] {
        let item = app
            .create_item(json!({"name": name, "price": 9.5, "tags": ["office"]}))
            .await;
        ids.push(item["id"].as_i64().expect("id"));
    }
    let first = format!("/items/{}", ids[0]);
    fill_bulk_namespace(app.redis());

    // Without a token: the auth error, and no data.
    browser.open(&format!("{}/cache/dashboard", app.base)).await;
    let refusal = browser
        .wait_for_text("#auth-error", "the auth error", |t| {
            t.contains("Admin access refused")
        })
        .await;
    assert!(refusal.contains("Enter the admin token"), "{refusal}");
    let shown = browser
        .script(
            "return [document.getElementById('data').classList.contains('hidden'), \
                    document.getElementById('total-hits').textContent];",
            json!([]),
        )
        .await;
    assert_eq!(shown, json!([true, "–"]), "no data without the token");

    // With the token: live numbers, kept in sessionStorage only.
    browser.type_into("#token", TOKEN).await;
    browser.click("#token-save").await;
    let before = browser
        .wait_for_text("#total-hits", "a hit count", |t| number_in(t).is_some())
        .await;
    let before = number_in(&before).expect("number");
    assert_eq!(browser.text("#auth-error").await, "", "the error is gone");
    let storage = browser
        .script(
            "return [sessionStorage.getItem('wrc-admin-token'), localStorage.length, \
                    document.cookie];",
            json!([]),
        )
        .await;
    assert_eq!(storage, json!([TOKEN, 0, ""]));
    assert_eq!(browser.text("#backend-kind").await, "redis");
    assert_eq!(browser.text("#backend-health").await, "healthy");
    assert_eq!(browser.text("#breaker-state").await, "closed");
    assert_eq!(browser.text("#pending-busts").await, "0");

    // Traffic in the background while the page samples it.
    let traffic_app = app.base.clone();
    let paths: Vec<String> = ids.iter().map(|id| format!("/items/{id}")).collect();
    let traffic = tokio::spawn(async move {
        let client = reqwest::Client::new();
        for round in 0..120 {
            for path in &paths {
                let _ = client.get(format!("{traffic_app}{path}")).send().await;
            }
            if round % 10 == 0 {
                let _ = client
                    .get(format!("{traffic_app}/items/999999"))
                    .send()
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    browser
        .wait_for_text("#total-hits", "more hits", |t| {
            number_in(t).is_some_and(|hits| hits >= before + 10)
        })
        .await;
    browser
        .wait_for_text("#ns-table tbody", "the items namespace", |t| {
            t.contains("items")
        })
        .await;
    browser
        .wait_for_text("#req-rate", "a request rate", |t| {
            t.parse::<f64>().is_ok_and(|rate| rate > 0.0)
        })
        .await;

    // The key browser: a namespace's entries, one entry's detail.
    browser.type_into("#keys-namespace", "items").await;
    browser.click("#keys-search").await;
    let entry_key = format!("GET:{first}");
    browser
        .wait_for_text("#keys-table tbody", "the item's entry", |t| {
            t.contains(&entry_key)
        })
        .await;
    browser.click_row("keys-table", &entry_key).await;
    browser
        .wait_for_text("#entry-key", "the entry", |t| t.contains(&entry_key))
        .await;
    assert_eq!(browser.text("#entry-validity").await, "valid");
    let tags = browser.text("#entry-tags").await;
    assert!(tags.contains(&format!("item:{}", ids[0])), "{tags}");
    assert!(browser.text("#entry-body").await.contains("lamp"));

    // The chart has a few samples by now.
    browser
        .wait_for_text("#chart-scale", "several samples", |t| {
            t.split(' ')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n >= 4)
        })
        .await;
    let lines = browser
        .script(
            "return document.querySelectorAll('#chart polyline').length;",
            json!([]),
        )
        .await;
    assert_eq!(lines, json!(2), "hit rate and request rate are drawn");
    traffic.await.expect("traffic task");

    // Purge one key: the dry run counts and changes nothing; the confirmation purges.
    browser.click("#entry-purge").await;
    let question = browser
        .wait_for_text("#purge-question", "the dry-run count", |t| {
            t.contains("dry run found")
        })
        .await;
    assert!(question.contains("1 live entry"), "{question}");
    assert_eq!(
        x_cache(&app.get(&first).await),
        "HIT",
        "a dry run purges nothing"
    );
    browser.script("window.scrollTo(0, 0);", json!([])).await;
    let screenshot = browser.screenshot().await;
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, &screenshot).expect("write the screenshot");
    eprintln!("dashboard screenshot: {}", path.display());
    browser.click("#purge-confirm-button").await;
    browser
        .wait_for_text("#purge-result", "the purge", |t| t.starts_with("purged"))
        .await;
    assert_eq!(
        x_cache(&app.get(&first).await),
        "MISS",
        "the entry was purged"
    );

    // A whole-namespace dry run, cancelled: its count, and nothing changed.
    browser.click("#purge-kind option[value='namespace']").await;
    browser.type_into("#purge-namespace", "items").await;
    browser.click("#purge-dry-run").await;
    let question = browser
        .wait_for_text("#purge-question", "the namespace count", |t| {
            t.contains("namespace items")
        })
        .await;
    let survey = admin_get(&app, "/cache/keys?namespace=items&limit=1000").await;
    assert!(survey["keys"].as_array().is_some_and(|k| !k.is_empty()));
    assert!(question.contains("live entries"), "{question}");
    browser.click("#purge-cancel").await;
    browser
        .wait_for_text("#purge-result", "the cancellation", |t| {
            t.contains("nothing changed")
        })
        .await;
    assert_eq!(
        x_cache(&app.get(&first).await),
        "HIT",
        "cancel purges nothing"
    );

    // 100,000 keys: one page at a time, and a prefix search.
    browser.type_into("#keys-namespace", "bulk").await;
    browser.type_into("#keys-prefix", "").await;
    browser.click("#keys-search").await;
    browser
        .wait_for_text("#keys-status", "a first page", |t| {
            t.contains("in bulk, more on the next page")
        })
        .await;
    let rows = browser
        .script(
            "return document.querySelectorAll('#keys-table tbody tr').length;",
            json!([]),
        )
        .await;
    let rows = rows.as_u64().expect("row count");
    assert!(
        (50..1000).contains(&rows),
        "one page, not everything: {rows}"
    );
    browser.type_into("#keys-prefix", "GET:/bulk/4242").await;
    browser.click("#keys-search").await;
    let status = browser
        .wait_for_text("#keys-status", "the prefix search", |t| {
            t.contains("end of the listing")
        })
        .await;
    assert!(status.starts_with("11 keys in bulk"), "{status}");

    browser.close().await;
}
