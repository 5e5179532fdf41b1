//! The warp-redis-cache service: load settings, build the application, serve until a signal.

use std::process::ExitCode;
use std::time::Duration;

use warp_redis_cache::settings::Settings;
use warp_redis_cache::startup::{shutdown_signal, Application};

/// After the server has drained, background work (pool tasks, a blocked SQLite call) gets this
/// long before the process exits regardless.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(serve());
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    code
}

async fn serve() -> ExitCode {
    let settings = match Settings::load(std::env::args().skip(1)) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    pretty_env_logger::formatted_timed_builder()
        .parse_filters(&settings.app.log_level)
        .init();
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
