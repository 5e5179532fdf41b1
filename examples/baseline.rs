//! The benchmark baseline: a bare warp route serving a fixed body from memory, with the same
//! content type as the service's item route. `scripts/bench.sh` measures everything as a ratio
//! to this.
//!
//! Usage: `baseline BODY_FILE PORT`.

use bytes::Bytes;
use warp::http::header::CONTENT_TYPE;
use warp::Filter;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let file = args.next().expect("usage: baseline BODY_FILE PORT");
    let port: u16 = args.next().and_then(|p| p.parse().ok()).expect("PORT");
    let body = Bytes::from(std::fs::read(&file).expect("read the body file"));
    let route = warp::path!("items" / u64).map(move |_| {
        let mut response = warp::reply::Response::new(body.clone().into());
        response.headers_mut().insert(
            CONTENT_TYPE,
            "application/json".parse().expect("valid header"),
        );
        response
    });
    warp::serve(route).run(([127, 0, 0, 1], port)).await;
}
