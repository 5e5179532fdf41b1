//! `cachectl`: look at, seed, warm, purge and clear the cache of a running service, through its
//! HTTP API.
//!
//! This file only declares the arguments (clap derive; `--help` on every command) and calls
//! `warp_redis_cache_service::ops`; `scripts/seed`, `scripts/warm` and `scripts/clear` are thin
//! wrappers around it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};
use warp_redis_cache::Namespace;
use warp_redis_cache_service::ops::clear::{self, ClearTarget};
use warp_redis_cache_service::ops::client::{Client, ClientConfig};
use warp_redis_cache_service::ops::keys::{self, KeysQuery};
use warp_redis_cache_service::ops::purge::{self, PurgeOptions, PurgeTarget};
use warp_redis_cache_service::ops::seed::{self, SeedError, SeedOptions};
use warp_redis_cache_service::ops::stats::{self, WatchOptions};
use warp_redis_cache_service::ops::summary::Summary;
use warp_redis_cache_service::ops::warm::{self, WarmOptions};
use warp_redis_cache_service::ops::{EXIT_FAILED, EXIT_USAGE};
use warp_redis_cache_service::routes::admin::MAX_KEYS_PER_PAGE;

const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";

/// Operate the cache of a running warp-redis-cache service, through its HTTP API.
#[derive(Debug, Parser)]
#[command(
    name = "cachectl",
    version,
    after_help = "Exit codes: 0 done, 1 something failed, 2 usage error or unusable file."
)]
struct Cli {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the service is; accepted before or after the command.
#[derive(Debug, Args)]
struct ServiceArgs {
    /// The service's base URL.
    #[arg(long, global = true, env = "BASE_URL", default_value = DEFAULT_BASE_URL)]
    base_url: String,
    /// Admin bearer token, sent on admin calls only.
    #[arg(long, global = true, env = "ADMIN__TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Retries of a transient failure (connection error, timeout, 5xx, 429).
    #[arg(long, global = true, default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=10))]
    retries: u32,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load items (JSON array or NDJSON file), then warm the cache.
    Seed {
        /// The item file.
        file: PathBuf,
        /// Write nothing unless every record is valid.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        warm: WarmArgs,
    },
    /// Warm the cache: every item and list page, or only the given items.
    Warm {
        /// Item ids, comma separated (default: all).
        #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(i64).range(1..))]
        ids: Option<Vec<i64>>,
        #[command(flatten)]
        warm: WarmArgs,
    },
    /// Delete the cached entries of one namespace, or everything under the service's prefix.
    Clear {
        /// The namespace to clear.
        #[arg(long, conflicts_with = "all")]
        namespace: Option<String>,
        /// Clear every key under the prefix (asked for explicitly).
        #[arg(long)]
        all: bool,
    },
    /// Counters per namespace and the backend's health; --watch for live rates.
    Stats {
        /// Refresh every --interval seconds with rates per second (Ctrl-C to stop).
        #[arg(long)]
        watch: bool,
        /// Seconds between two refreshes.
        #[arg(long, default_value_t = 1.0, value_parser = interval_secs)]
        interval: f64,
        /// Stop after this many refreshes (default: never).
        #[arg(long)]
        count: Option<u64>,
        /// Namespaces shown by --watch, busiest first.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
    /// List cached entries with TTL and size.
    Keys {
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Only keys starting with this (needs --namespace), e.g. GET:/items/1.
        #[arg(long, requires = "namespace")]
        prefix: Option<String>,
        /// Entries per page (a hint).
        #[arg(long, default_value_t = 100,
              value_parser = clap::value_parser!(u16).range(1..=MAX_KEYS_PER_PAGE as i64))]
        limit: u16,
        /// Continue from this cursor (printed after a page).
        #[arg(long, default_value_t = 0)]
        cursor: u64,
        /// Every page, to the end.
        #[arg(long)]
        all: bool,
    },
    /// Invalidate entries by key or tag, or a whole namespace; --dry-run counts first.
    Purge {
        /// The namespace.
        #[arg(long)]
        namespace: String,
        /// An entry key, as `cachectl keys` shows it (repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// A tag, e.g. item:42 (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Purge every entry of the namespace.
        #[arg(long, conflicts_with_all = ["keys", "tags"])]
        whole: bool,
        /// Mark stale (served while refreshed) rather than dead.
        #[arg(long)]
        soft: bool,
        /// Count what would be purged; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// How seed and warm send their requests.
#[derive(Debug, Args)]
struct WarmArgs {
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// List pages of 100 items to warm.
    #[arg(long, default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pages: u32,
}

impl WarmArgs {
    fn options(&self) -> WarmOptions {
        WarmOptions {
            concurrency: usize::from(self.concurrency),
            list_pages: self.pages,
        }
    }
}

fn interval_secs(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(secs) if (0.1..=3600.0).contains(&secs) => Ok(secs),
        _ => Err("a number of seconds from 0.1 to 3600".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // An empty BASE_URL counts as unset, as it always has.
    let base_url = Some(cli.service.base_url.clone()).filter(|url| !url.is_empty());
    let config = ClientConfig {
        base_url: base_url.unwrap_or_else(|| DEFAULT_BASE_URL.into()),
        token: cli.service.token.clone().filter(|token| !token.is_empty()),
        retries: cli.service.retries,
    };
    let client = match Client::new(&config) {
        Ok(client) => client,
        Err(err) => usage_error(&err.to_string()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(run(&client, cli.command))
}

async fn run(client: &Client, command: Command) -> ExitCode {
    match command {
        Command::Seed { file, strict, warm } => {
            let options = SeedOptions {
                warm: warm.options(),
                strict,
            };
            match seed::run(client, &file, &options).await {
                Ok(summary) => finish(&summary),
                Err(SeedError::File(err)) => fail(&err, EXIT_USAGE),
                Err(err) => fail(&err, EXIT_FAILED),
            }
        }
        Command::Warm { ids, warm } => {
            match warm::run(client, ids.as_deref(), &warm.options()).await {
                Ok(summary) => finish(&summary),
                Err(err) => fail(&err, EXIT_FAILED),
            }
        }
        Command::Clear { namespace, all } => {
            let target = match (namespace, all) {
                (Some(ns), _) => ClearTarget::Namespace(namespace_arg(&ns)),
                (None, true) => ClearTarget::All,
                (None, false) => {
                    usage_error("clear needs --namespace NS, or --all to clear everything")
                }
            };
            match clear::run(client, &target).await {
                Ok(answer) => done(&clear::describe(&answer)),
                Err(err) => fail(&err, EXIT_FAILED),
            }
        }
        Command::Stats {
            watch,
            interval,
            count,
            top,
        } => {
            if !watch {
                return match client.stats().await {
                    Ok(answer) => done(stats::table(&answer).trim_end()),
                    Err(err) => fail(&err, EXIT_FAILED),
                };
            }
            let options = WatchOptions {
                interval: Duration::from_secs_f64(interval),
                frames: count,
                top,
                redraw: std::io::stdout().is_terminal(),
            };
            match stats::watch(client, &options, &mut std::io::stdout()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(&err, EXIT_FAILED),
            }
        }
        Command::Keys {
            namespace,
            prefix,
            limit,
            cursor,
            all,
        } => {
            let query = KeysQuery {
                namespace: namespace.as_deref().map(namespace_arg),
                prefix,
                cursor,
                limit: usize::from(limit),
                all,
            };
            match keys::run(client, &query, |text| print!("{text}")).await {
                Ok((shown, 0)) => done(&format!("{shown} entries, end of the listing")),
                Ok((shown, next)) => done(&format!(
                    "{shown} entries; more with --cursor {next} (or --all)"
                )),
                Err(err) => fail(&err, EXIT_FAILED),
            }
        }
        Command::Purge {
            namespace,
            keys,
            tags,
            whole,
            soft,
            dry_run,
        } => {
            let namespace = namespace_arg(&namespace);
            let target = match (whole, keys.is_empty() && tags.is_empty()) {
                (true, _) => PurgeTarget::Namespace(namespace),
                (false, false) => PurgeTarget::Entries {
                    namespace,
                    keys,
                    tags,
                },
                (false, true) => usage_error(
                    "purge needs --key K or --tag T (repeatable), or --whole for the namespace",
                ),
            };
            let options = PurgeOptions {
                target,
                soft,
                dry_run,
            };
            match purge::run(client, &options).await {
                Ok(answer) => done(&purge::describe(&answer)),
                Err(err) => fail(&err, EXIT_FAILED),
            }
        }
    }
}

fn namespace_arg(raw: &str) -> Namespace {
    Namespace::new(raw).unwrap_or_else(|err| usage_error(&format!("--namespace: {err}")))
}

fn done(text: &str) -> ExitCode {
    println!("{text}");
    ExitCode::SUCCESS
}

fn finish(summary: &Summary) -> ExitCode {
    println!("{summary}");
    if summary.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

fn fail(err: &dyn std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(code)
}

/// Prints a usage error the way clap does for its own, and exits with code 2.
fn usage_error(message: &str) -> ! {
    let err = Cli::command().error(clap::error::ErrorKind::ValueValidation, message);
    assert_eq!(i32::from(EXIT_USAGE), err.exit_code());
    err.exit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cachectl").chain(line.split_whitespace()))
    }

    #[test]
    fn the_argument_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn each_command_takes_its_own_flags_and_the_common_ones() {
        let seed = parse("seed items.json --strict --concurrency=4 --retries 0").expect("valid");
        assert_eq!(seed.service.retries, 0);
        let Command::Seed { file, strict, warm } = seed.command else {
            panic!("seed")
        };
        assert_eq!((file, strict), ("items.json".into(), true));
        assert_eq!((warm.concurrency, warm.pages), (4, 10));
        let warm = parse("warm --ids 3,1,2 --base-url http://h:1 --token t").expect("valid");
        assert_eq!(warm.service.base_url, "http://h:1");
        assert_eq!(warm.service.token.as_deref(), Some("t"));
        assert!(matches!(warm.command, Command::Warm { ids: Some(ids), .. } if ids == [3, 1, 2]));
        let purge =
            parse("purge --namespace items --key GET:/items/1 --key b --dry-run").expect("valid");
        assert!(
            matches!(purge.command, Command::Purge { keys, dry_run: true, .. } if keys.len() == 2)
        );
        let stats =
            parse("--base-url http://h:2 stats --watch --interval 0.5 --count 3").expect("valid");
        assert_eq!(stats.service.base_url, "http://h:2");
        assert!(matches!(
            stats.command,
            Command::Stats {
                watch: true,
                count: Some(3),
                ..
            }
        ));
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for bad in [
            "",
            "nuke",
            "seed",
            "seed a.json b.json",
            "seed a.json --ids 1",
            "warm --ids 1,x",
            "warm --ids 0",
            "warm --strict",
            "clear --all --namespace items",
            "clear --namespace",
            "warm --concurrency 0",
            "warm --retries -1",
            "keys --prefix GET:",
            "keys --limit 0",
            "purge --key x",
            "purge --namespace items --whole --key x",
            "stats --interval 0",
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn help_is_offered_on_every_command() {
        for line in [
            "--help",
            "seed --help",
            "warm --help",
            "clear --help",
            "stats --help",
            "keys --help",
            "purge --help",
        ] {
            let err = parse(line).expect_err("help exits early");
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{line}");
        }
    }
}
