//! The warp-redis-cache service: load settings, build the application, serve until a signal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use warp_redis_cache_service::settings::Settings;
use warp_redis_cache_service::startup::{shutdown_signal, Application};

/// After the server has drained, background work (pool tasks, a blocked SQLite call) gets this
/// long before the process exits regardless.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

/// An HTTP item API cached on Redis, with the cache's admin routes and dashboard.
///
/// Settings come from the YAML file (--config, else SETTINGS_FILE, else ./settings.yaml when it
/// exists), overridden by environment variables named SECTION__FIELD (APP__PORT=9000,
/// ADMIN__TOKEN=..., CACHE__BACKEND=memory). See README.md, "Settings".
#[derive(Debug, Parser)]
#[command(name = "warp-redis-cache", version)]
struct Cli {
    /// The settings file.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(serve(cli));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    // Access lines are written in batches off the request path: the last batch goes now.
    warp_redis_cache_service::logging::flush();
    code
}

async fn serve(cli: Cli) -> ExitCode {
    let settings = match Settings::load_with_config(cli.config) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    warp_redis_cache_service::logging::init(&settings.app.log_level, settings.app.log_format);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(err) => {
            log::error!("cannot start: {err}");
            return ExitCode::from(1);
        }
    };
    let shutdown = shutdown_signal();
    app.run_until(shutdown).await;
    ExitCode::SUCCESS
}
