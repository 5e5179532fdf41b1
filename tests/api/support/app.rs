//! The service running in this process on a free port, with typed request helpers.

use warp_redis_cache_service::settings::Settings;

use super::{app_settings, RedisServer};

/// A service running in this process on a free port, with typed request helpers.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The item store behind the API, for changing data behind the cache's back.
    pub store: warp_redis_cache_service::items::ItemStore,
    client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// The Redis the app was started on, when it has one of its own: killed when the app drops.
    redis: Option<RedisServer>,
}

/// Starts the service on a Redis of its own, with the test settings ([`app_settings`]).
pub async fn spawn_app() -> TestApp {
    spawn_app_on(RedisServer::start()).await
}

/// Starts the service on a Redis of its own, with the test settings changed by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    owning(RedisServer::start(), configure).await
}

/// Starts the service with the test settings on `redis` (a persistent one, say), which the app
/// then owns.
pub async fn spawn_app_on(redis: RedisServer) -> TestApp {
    owning(redis, |_| {}).await
}

async fn owning(redis: RedisServer, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = app_settings(&redis.url());
    configure(&mut settings);
    let mut app = spawn_app_from(settings).await;
    app.redis = Some(redis);
    app
}

/// Starts the service with exactly `settings` and no Redis of its own: for several apps on one
/// Redis that the test owns, or apps on a Redis Cluster.
pub async fn spawn_app_from(settings: Settings) -> TestApp {
    let app = warp_redis_cache_service::startup::Application::build(settings)
        .await
        .expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.store().clone();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        store,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client"),
        shutdown: Some(shutdown),
        server: Some(server),
        redis: None,
    }
}

impl TestApp {
    /// The app's own Redis, to read and plant keys behind its back, or to stop, pause and
    /// restart it.
    pub fn redis(&self) -> &RedisServer {
        self.redis
            .as_ref()
            .expect("an app from spawn_app_from has no Redis of its own: use the test's")
    }

    /// GET `path` with extra request headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        self.request(reqwest::Method::GET, path, headers).await
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_with(path, &[]).await
    }

    /// Sends `method` to `path` with extra headers and no body.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request is answered")
    }

    /// Sends `method` to `path` with a JSON body.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .request(method, format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request is answered")
    }

    /// Sends `method` to `path` with a raw body and content type.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request is answered")
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .expect("DELETE is answered")
    }

    /// Creates an item through the API and returns its JSON.
    pub async fn create_item(&self, body: serde_json::Value) -> serde_json::Value {
        let response = self.send_json(reqwest::Method::POST, "/items", &body).await;
        assert_eq!(response.status(), 201, "create failed");
        response.json().await.expect("item JSON")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown_now().await;
    }

    async fn shutdown_now(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
