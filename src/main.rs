//! The warp-redis-cache service: load settings, build the application, serve until a signal.

use std::process::ExitCode;

use warp_redis_cache::settings::Settings;
use warp_redis_cache::startup::{shutdown_signal, Application};

#[tokio::main]
async fn main() -> ExitCode {
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
    log::info!("listening on port {}", app.port());
    app.run_until(shutdown).await;
    ExitCode::SUCCESS
}
