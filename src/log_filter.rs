//! Checking a log filter (`app.log_level`, `RUST_LOG`) before handing it to env_logger.
//!
//! env_logger ignores what it cannot parse: `RUST_LOG=[a]` would start a service that logs
//! nothing at all. The grammar it understands is `directive[,directive...][/filter]`, each
//! directive a level (`info`), a module path (`warp_redis_cache::access`) or both
//! (`hyper=warn`); anything else is refused at startup like every other bad setting.

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `Ok` when env_logger will understand `spec` completely.
///
/// ```
/// use warp_redis_cache_service::log_filter::validate;
///
/// assert!(validate("info").is_ok());
/// assert!(validate("warn,warp_redis_cache::access=info").is_ok());
/// assert!(validate("[a]").is_err());
/// assert!(validate("warp_redis_cache=loud").is_err());
/// ```
pub fn validate(spec: &str) -> Result<(), String> {
    let directives = spec
        .split_once('/')
        .map_or(spec, |(directives, _)| directives);
    if directives.trim().is_empty() {
        return Err("is empty: give a level such as info, or module=level pairs".into());
    }
    for directive in directives.split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        let (module, level) = match directive.split_once('=') {
            Some((module, level)) => (Some(module.trim()), Some(level.trim())),
            None if is_level(directive) => (None, Some(directive)),
            None => (Some(directive), None),
        };
        if let Some(level) = level.filter(|level| !is_level(level)) {
            return Err(format!(
                "{level:?} in {directive:?} is not a level (one of {})",
                LEVELS.join(", ")
            ));
        }
        if let Some(module) = module.filter(|module| !is_module_path(module)) {
            return Err(format!(
                "{module:?} in {directive:?} is not a module path (letters, digits, _ and ::)"
            ));
        }
    }
    Ok(())
}

fn is_level(word: &str) -> bool {
    LEVELS.iter().any(|level| level.eq_ignore_ascii_case(word))
}

fn is_module_path(path: &str) -> bool {
    !path.is_empty()
        && path.split("::").all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_logger_grammar_is_accepted() {
        for spec in [
            "info",
            "DEBUG",
            "warp_redis_cache",
            "warn,warp_redis_cache=debug",
            "info,hyper=off,warp_redis_cache::access=warn",
            "info/listening",
        ] {
            assert!(validate(spec).is_ok(), "{spec}");
        }
    }

    #[test]
    fn anything_env_logger_would_silently_drop_is_refused() {
        for spec in [
            "",
            "[a]",
            "info,[a]",
            "x=loud",
            "=info",
            "a:b=info",
            "warp redis",
            "/x",
        ] {
            assert!(validate(spec).is_err(), "{spec:?}");
        }
    }
}
