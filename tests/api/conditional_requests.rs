//! `If-None-Match` answers 304 only for the representation the client would get: the gzip
//! entity tag does not validate the plain body a client without gzip receives.

use serde_json::json;

use crate::support::{header, spawn_app, x_cache};

#[tokio::test]
async fn the_gzip_etag_gets_no_304_from_a_client_that_does_not_accept_gzip() {
    let app = spawn_app().await;
    let description = "a lamp with a long description ".repeat(30);
    app.create_item(json!({"name": "lamp", "price": 1, "description": description}))
        .await;
    let gzip = [("accept-encoding", "gzip")];
    app.get_with("/items/1", &gzip).await;
    let stored = app.get_with("/items/1", &gzip).await;
    assert_eq!(x_cache(&stored), "HIT");
    let gzip_etag = header(&stored, "etag");
    assert!(gzip_etag.ends_with("-gzip\""), "{gzip_etag}");
    let plain_etag = header(&app.get("/items/1").await, "etag");
    assert_ne!(plain_etag, gzip_etag);

    let cases = [
        (&gzip_etag, Some("gzip"), 304),
        (&plain_etag, None, 304),
        (&gzip_etag, None, 200),
        (&gzip_etag, Some("identity"), 200),
        (&plain_etag, Some("gzip"), 200),
    ];
    for (etag, accept_encoding, expected) in cases {
        let mut headers = vec![("if-none-match", etag.as_str())];
        if let Some(coding) = accept_encoding {
            headers.push(("accept-encoding", coding));
        }
        let response = app.get_with("/items/1", &headers).await;
        assert_eq!(response.status(), expected, "{headers:?}");
        if expected == 200 {
            let sent_gzip = header(&response, "content-encoding") == "gzip";
            assert_eq!(sent_gzip, accept_encoding == Some("gzip"), "{headers:?}");
            assert!(!response.bytes().await.expect("body").is_empty());
        }
    }
}
