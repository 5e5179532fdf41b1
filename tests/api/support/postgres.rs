//! PostgreSQL for tests: a fresh database per test, dropped when the test ends.
//!
//! The server is the one `WRC_TEST_POSTGRES_URL` names (an admin connection that may create
//! databases), by default [`DEFAULT_ADMIN_URL`]. Each [`TestDatabase`] is a new
//! `wrc_test_<unique>` database, so tests share no state, and its drop removes it (best effort:
//! a killed test run leaves it behind). Where no server answers, [`TestDatabase::create`] says
//! so once on stderr and returns `None`, and the test passes without running; with
//! `WRC_TEST_POSTGRES_REQUIRED` set, that is a failure instead.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};
use warp_redis_cache::redact_password;

/// Environment variable naming the admin connection.
pub const ADMIN_URL_ENV: &str = "WRC_TEST_POSTGRES_URL";
/// Environment variable that turns "no PostgreSQL" from a skip into a failure.
pub const REQUIRED_ENV: &str = "WRC_TEST_POSTGRES_REQUIRED";
/// The admin connection when `WRC_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test.
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    admin: Config,
}

impl TestDatabase {
    /// A new, empty UTF-8 database, or `None` (after saying why) when there is no server.
    pub async fn create() -> Option<Self> {
        Self::create_with_encoding("UTF8").await
    }

    /// A new, empty database in `encoding` (with the C locale, which fits any encoding).
    pub async fn create_with_encoding(encoding: &str) -> Option<Self> {
        let admin_url = std::env::var(ADMIN_URL_ENV)
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_string());
        let admin: Config = admin_url
            .parse()
            .unwrap_or_else(|err| panic!("{ADMIN_URL_ENV} is not a PostgreSQL URL: {err}"));
        let client = match connect(&admin).await {
            Ok(client) => client,
            Err(err) => {
                skip(&admin_url, &err);
                return None;
            }
        };
        let name = unique_name();
        client
            .batch_execute(&format!(
                "CREATE DATABASE {name} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' \
                 TEMPLATE template0"
            ))
            .await
            .unwrap_or_else(|err| panic!("cannot create test database {name}: {err:?}"));
        Some(Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
            admin,
        })
    }

    /// The URL of this database, for `database.url` or `ItemStore::open_postgres`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This database's URL, reached through `127.0.0.1:port` instead of the server's address.
    pub fn url_via(&self, port: u16) -> String {
        let mut url = String::from("postgres://");
        if let Some(user) = self.admin.get_user() {
            url.push_str(&encode(user.as_bytes()));
            if let Some(password) = self.admin.get_password() {
                url.push(':');
                url.push_str(&encode(password));
            }
            url.push('@');
        }
        url.push_str(&format!("127.0.0.1:{port}/{}", self.name));
        url
    }

    /// The server's TCP address, when the admin URL names one (not a Unix socket).
    pub async fn server_addr(&self) -> Option<SocketAddr> {
        let Some(Host::Tcp(host)) = self.admin.get_hosts().first() else {
            return None;
        };
        let port = self.admin.get_ports().first().copied().unwrap_or(5432);
        tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()?
            .next()
    }

    /// A direct connection to this database, to read and change rows behind the store's back.
    pub async fn client(&self) -> Client {
        let config: Config = self.url.parse().expect("test database URL");
        connect(&config)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {}: {err}", self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let drop_sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with
        // a runtime of its own. WITH (FORCE) ends the connections the service still holds.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime.block_on(async {
                let client = connect(&admin).await.map_err(|err| err.to_string())?;
                client
                    .batch_execute(&drop_sql)
                    .await
                    .map_err(|err| format!("{err:?}"))
            })
        })
        .join();
        if let Ok(Err(err)) | Err(err) = dropped.map_err(|_| "panicked".to_string()) {
            let admin_url = redact_password(&self.admin_url);
            eprintln!(
                "warning: test database {} left on {admin_url}: {err}",
                self.name
            );
        }
    }
}

/// Connects `config`, driving the connection on a task of the current runtime.
pub async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn skip(admin_url: &str, err: &tokio_postgres::Error) {
    let shown = redact_password(admin_url);
    let cause = std::error::Error::source(err)
        .map(|cause| format!(": {cause}"))
        .unwrap_or_default();
    if std::env::var_os(REQUIRED_ENV).is_some_and(|value| !value.is_empty()) {
        panic!("no PostgreSQL at {shown} ({err}{cause}) and {REQUIRED_ENV} is set");
    }
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        // Straight to the process's stderr: the test harness hides what eprintln! prints in
        // passing tests, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: no PostgreSQL at {shown} ({err}{cause}) (set {ADMIN_URL_ENV}); \
             the PostgreSQL tests pass without running"
        );
    });
}

fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let serial = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("wrc_test_{:x}_{nanos:x}_{serial}", std::process::id())
}

/// `url` with its database name (the path) replaced by `name`, query parameters kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let host_start = base[authority_start..]
        .rfind('@')
        .map_or(authority_start, |at| authority_start + at + 1);
    let path_start = base[host_start..]
        .find('/')
        .map_or(base.len(), |at| host_start + at);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

fn encode(text: &[u8]) -> String {
    percent_encoding::percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A TCP relay on a free loopback port to the PostgreSQL server, which a test cuts (refusing
/// new connections and closing open ones, as a server outage does) and restores.
pub struct Relay {
    port: u16,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let task = Some(tokio::spawn(relay(listener, target)));
        Self { port, target, task }
    }

    /// The loopback port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Refuses new connections and closes every relayed one.
    pub async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Relays again, on the same port.
    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind the relay port");
        self.task = Some(tokio::spawn(relay(listener, self.target)));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts and relays until aborted; aborting drops the set, which closes every connection.
async fn relay(listener: TcpListener, target: SocketAddr) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[test]
fn the_database_name_replaces_the_path_of_any_admin_url() {
    let cases = [
        (
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@127.0.0.1:5432/t",
        ),
        (
            "postgres://u:p@h/db?sslmode=disable",
            "postgres://u:p@h/t?sslmode=disable",
        ),
        ("postgresql://h:5433", "postgresql://h:5433/t"),
        ("postgres://u:p%2Fq@h/", "postgres://u:p%2Fq@h/t"),
    ];
    for (admin, expected) in cases {
        assert_eq!(with_database(admin, "t"), expected, "{admin}");
    }
}
