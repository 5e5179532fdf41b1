//! `cachectl`: seed, warm and clear the cache of a running service, through its HTTP API.
//!
//! This file only reads arguments and the environment and calls `warp_redis_cache::ops`;
//! `scripts/seed`, `scripts/warm` and `scripts/clear` are thin wrappers around it. Flags are
//! parsed by hand: there are few, and a parser crate would cost more than it saves.

use std::path::PathBuf;
use std::process::ExitCode;

use warp_redis_cache::cache::Namespace;
use warp_redis_cache::ops::clear::{self, ClearTarget};
use warp_redis_cache::ops::client::{Client, ClientConfig};
use warp_redis_cache::ops::seed::{self, SeedError, SeedOptions};
use warp_redis_cache::ops::summary::Summary;
use warp_redis_cache::ops::warm::{self, WarmOptions};
use warp_redis_cache::ops::{EXIT_FAILED, EXIT_USAGE};

const USAGE: &str = "\
usage: cachectl seed FILE [--strict] [options]     load items (JSON array or NDJSON), then warm
       cachectl warm [--ids 1,2,3] [options]       warm all items, or the given ones
       cachectl clear (--namespace NS | --all) [options]
options:
  --base-url URL     the service (env BASE_URL; default http://127.0.0.1:8080)
  --token TOKEN      admin bearer token, sent on admin calls only (env ADMIN__TOKEN)
  --concurrency N    requests in flight at once (default 8)
  --retries N        retries of a transient failure (default 3)
  --pages N          list pages of 100 items to warm (seed, warm; default 10)
exit codes: 0 done, 1 something failed, 2 usage error or unusable file";

const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";

#[derive(Debug, PartialEq)]
enum Command {
    Seed { file: PathBuf, strict: bool },
    Warm { ids: Option<Vec<i64>> },
    Clear(ClearTarget),
    Help,
}

#[derive(Debug, PartialEq)]
struct Args {
    command: Command,
    base_url: Option<String>,
    token: Option<String>,
    concurrency: usize,
    retries: u32,
    pages: u32,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => return usage_error(&message),
    };
    if args.command == Command::Help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = ClientConfig {
        base_url: args
            .base_url
            .clone()
            .or_else(|| env("BASE_URL"))
            .unwrap_or_else(|| DEFAULT_BASE_URL.into()),
        token: args.token.clone().or_else(|| env("ADMIN__TOKEN")),
        retries: args.retries,
    };
    let client = match Client::new(&config) {
        Ok(client) => client,
        Err(err) => return usage_error(&err.to_string()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(run(&client, args))
}

async fn run(client: &Client, args: Args) -> ExitCode {
    let warm_options = WarmOptions {
        concurrency: args.concurrency,
        list_pages: args.pages,
    };
    match args.command {
        Command::Seed { file, strict } => {
            let options = SeedOptions {
                warm: warm_options,
                strict,
            };
            match seed::run(client, &file, &options).await {
                Ok(summary) => finish(&summary),
                Err(SeedError::File(err)) => fail(&err, EXIT_USAGE),
                Err(err) => fail(&err, EXIT_FAILED),
            }
        }
        Command::Warm { ids } => match warm::run(client, ids.as_deref(), &warm_options).await {
            Ok(summary) => finish(&summary),
            Err(err) => fail(&err, EXIT_FAILED),
        },
        Command::Clear(target) => match clear::run(client, &target).await {
            Ok(answer) => {
                println!("{}", clear::describe(&answer));
                ExitCode::SUCCESS
            }
            Err(err) => fail(&err, EXIT_FAILED),
        },
        Command::Help => ExitCode::SUCCESS,
    }
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

fn usage_error(message: &str) -> ExitCode {
    eprintln!("cachectl: {message}\n{USAGE}");
    ExitCode::from(EXIT_USAGE)
}

/// An environment variable, when set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn parse_args(raw: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut raw = raw.into_iter();
    let command = raw.next().ok_or("no command given")?;
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        return Ok(Args::new(Command::Help));
    }
    if !matches!(command.as_str(), "seed" | "warm" | "clear") {
        return Err(format!("unknown command {command:?}"));
    }
    let mut args = Args::new(Command::Help);
    let (mut file, mut strict, mut ids, mut namespace, mut all) = (None, false, None, None, false);
    while let Some(arg) = raw.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            if command != "seed" || file.is_some() {
                return Err(format!("unexpected argument {arg:?}"));
            }
            file = Some(PathBuf::from(arg));
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (flag, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| raw.next())
                .ok_or(format!("--{name} needs a value"))
        };
        match (command.as_str(), name) {
            (_, "help") => return Ok(Args::new(Command::Help)),
            (_, "base-url") => args.base_url = Some(value()?),
            (_, "token") => args.token = Some(value()?),
            (_, "concurrency") => args.concurrency = number(name, &value()?, 1..=256)?,
            (_, "retries") => args.retries = number(name, &value()?, 0..=10)?,
            ("seed" | "warm", "pages") => args.pages = number(name, &value()?, 0..=10_000)?,
            ("seed", "strict") => strict = true,
            ("warm", "ids") => ids = Some(parse_ids(&value()?)?),
            ("clear", "namespace") => namespace = Some(value()?),
            ("clear", "all") => all = true,
            _ => return Err(format!("unknown option --{name} for {command}")),
        }
    }
    args.command = match command.as_str() {
        "seed" => Command::Seed {
            file: file.ok_or("seed needs a FILE")?,
            strict,
        },
        "warm" => Command::Warm { ids },
        _ => Command::Clear(clear_target(namespace, all)?),
    };
    Ok(args)
}

impl Args {
    fn new(command: Command) -> Self {
        Args {
            command,
            base_url: None,
            token: None,
            concurrency: 8,
            retries: 3,
            pages: 10,
        }
    }
}

fn clear_target(namespace: Option<String>, all: bool) -> Result<ClearTarget, String> {
    match (namespace, all) {
        (Some(ns), false) => Namespace::new(&ns)
            .map(ClearTarget::Namespace)
            .map_err(|err| format!("--namespace: {err}")),
        (None, true) => Ok(ClearTarget::All),
        (Some(_), true) => Err("give --namespace NS or --all, not both".into()),
        (None, false) => Err("clear needs --namespace NS, or --all to clear everything".into()),
    }
}

fn number<T>(name: &str, value: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    value
        .parse::<T>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "--{name} must be a whole number from {} to {}, got {value:?}",
                range.start(),
                range.end()
            )
        })
}

fn parse_ids(value: &str) -> Result<Vec<i64>, String> {
    value
        .split(',')
        .map(|id| {
            id.trim()
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| format!("--ids: {id:?} is not a positive integer"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, String> {
        parse_args(line.split_whitespace().map(String::from))
    }

    #[test]
    fn each_command_takes_its_own_flags_and_the_common_ones() {
        let seed = parse("seed items.json --strict --concurrency=4 --retries 0").expect("valid");
        assert_eq!(
            seed.command,
            Command::Seed {
                file: "items.json".into(),
                strict: true
            }
        );
        assert_eq!((seed.concurrency, seed.retries, seed.pages), (4, 0, 10));
        let warm = parse("warm --ids 3,1,2 --base-url http://h:1 --token t").expect("valid");
        assert_eq!(
            warm.command,
            Command::Warm {
                ids: Some(vec![3, 1, 2])
            }
        );
        assert_eq!(warm.base_url.as_deref(), Some("http://h:1"));
        assert_eq!(warm.token.as_deref(), Some("t"));
        let all = parse("clear --all").expect("valid");
        assert_eq!(all.command, Command::Clear(ClearTarget::All));
        assert_eq!(parse("clear --help").expect("help").command, Command::Help);
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
            "clear",
            "clear --all --namespace items",
            "clear --namespace bad/name",
            "clear --namespace",
            "warm --concurrency 0",
            "warm --retries -1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
