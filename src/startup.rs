//! Builds the application from settings: cache manager, routes and a bound listener.
//!
//! Tests call [`Application::build`] with port 0 and read [`Application::port`]; `main` does the
//! same with the configured port, then [`Application::run_until`] a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use warp::{Filter, Reply};

use crate::error::handle_rejection;
use crate::items::ItemStore;
use crate::metrics::Metrics;
use crate::observe::{self, SecurityHeaders};
use crate::routes;
use crate::routes::auth::AdminAccess;
use crate::server::{self, ConnectionMetrics, ServerLimits};
use crate::settings::Settings;
use warp_redis_cache::CacheManager;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Redis client could not be built.
    #[error(transparent)]
    Redis(#[from] warp_redis_cache::InvalidRedisUrl),
    /// The item store could not be opened (for PostgreSQL: reached and migrated).
    #[error("cannot open the item store at {location}: {source}")]
    Store {
        /// The SQLite path, or the PostgreSQL URL without its password.
        location: String,
        /// What went wrong.
        source: crate::items::StoreError,
    },
}

/// A built, bound, not yet serving application.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    cache: CacheManager,
    store: ItemStore,
    settings: Settings,
}

impl Application {
    /// Opens the item store, connects the cache and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let location = settings.database.location();
        let store = ItemStore::connect(&settings.database)
            .await
            .map_err(|source| StartupError::Store {
                location: location.clone(),
                source,
            })?;
        let backend = if settings.database.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        log::info!("item store: {backend} at {location}");
        let cache = CacheManager::connect(&settings.cache, &settings.redis).await?;
        let ip = settings
            .app
            .host
            .parse()
            .expect("settings validation checked app.host");
        let addr = SocketAddr::new(ip, settings.app.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Self {
            listener,
            local_addr,
            cache,
            store,
            settings,
        })
    }

    /// The port the listener is bound to.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The item store the routes use.
    pub fn store(&self) -> &ItemStore {
        &self.store
    }

    /// The cache manager the routes use.
    pub fn cache(&self) -> &CacheManager {
        &self.cache
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at most the
    /// configured grace period.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let grace = self.settings.app.shutdown_grace();
        let access = AdminAccess::from_settings(&self.settings.admin);
        log::info!("{}", access.describe());
        let metrics = Arc::new(Metrics::new());
        let app = &self.settings.app;
        let routes = routes::all(
            self.cache.clone(),
            self.store.clone(),
            Arc::clone(&metrics),
            access,
            app.max_body_bytes,
        )
        .map(Reply::into_response)
        .recover(handle_rejection)
        .unify()
        // Boxed: the whole tree's request future is tens of kilobytes, and hyper moves it twice
        // per request (into its dispatcher, then into the oneshot); behind a box it moves a
        // pointer. Measured with scripts/profile_hit.sh: ~16 k fewer instructions per request.
        .boxed();
        let routes = observe::service(
            warp::service(routes),
            Arc::clone(&metrics),
            SecurityHeaders::new(app.hsts_max_age_secs),
        );
        let limits = ServerLimits::from_settings(app);
        log::info!("{}", limits.describe());
        let connections = Arc::new(ConnectionMetrics::register(metrics.registry()));
        log::info!("listening on http://{}", self.local_addr);
        server::serve(self.listener, routes, limits, connections, shutdown, grace).await;
    }
}

/// Registers for SIGINT and SIGTERM now, and returns a future that completes on either.
/// Registering before the listener is announced means a signal sent as soon as the service
/// says it is listening is never lost to the default action (immediate termination).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {},
                        _ = terminate.recv() => {},
                    }
                }
                (interrupt, terminate) => {
                    log::warn!(
                        "cannot listen for signals ({:?}, {:?}); falling back to Ctrl-C only",
                        interrupt.err(),
                        terminate.err()
                    );
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
