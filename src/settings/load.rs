//! Reading settings: built-in defaults, then the YAML file, then `SECTION__FIELD` environment
//! variables, each value remembered with where it came from so an error can name it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::{Settings, DEFAULT_SETTINGS_FILE, SETTINGS_FILE_ENV};

const SECTIONS: [&str; 5] = ["app", "redis", "cache", "admin", "database"];

/// Where a setting's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The YAML file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "the built-in default"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// Why the settings could not be loaded; the message names the field and its origin.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// The settings file named explicitly could not be read.
    #[error("settings file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The settings file is not valid YAML, or not a mapping.
    #[error("settings file {path}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A field has a value of the wrong type or an unknown name.
    #[error("setting {field} (from {origin}): {reason}")]
    Invalid {
        /// Dotted field path, e.g. `app.port`.
        field: String,
        /// Where the value came from.
        origin: Origin,
        /// What is wrong with it.
        reason: String,
    },
    /// The command line could not be understood.
    #[error("command line: {0}")]
    Usage(String),
}

/// Where values were read from, to name origins in errors.
#[derive(Debug, Default)]
pub(super) struct Provenance {
    file: Option<PathBuf>,
    env: BTreeMap<String, String>,
}

impl Provenance {
    pub(super) fn origin_of(&self, field: &str) -> Origin {
        let mut best: Option<(&String, &String)> = None;
        for (path, var) in &self.env {
            let matches = field == path || field.starts_with(&format!("{path}."));
            let longer = best.is_none_or(|(p, _)| path.len() > p.len());
            if matches && longer {
                best = Some((path, var));
            }
        }
        match (best, &self.file) {
            (Some((_, var)), _) => Origin::Env(var.clone()),
            (None, Some(file)) => Origin::File(file.clone()),
            (None, None) => Origin::Default,
        }
    }
}

impl Settings {
    /// Loads settings from the command line arguments and the process environment.
    ///
    /// `args` are the arguments after the program name; only `--config PATH` is understood.
    pub fn load(args: impl IntoIterator<Item = String>) -> Result<Self, SettingsError> {
        let config_arg = parse_config_arg(args)?;
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(config_arg, &vars)
    }

    /// Loads settings from `config` (when given) and the process environment; for a binary
    /// that parses its own arguments.
    pub fn load_with_config(config: Option<PathBuf>) -> Result<Self, SettingsError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(config, &vars)
    }

    /// Loads settings from an optional explicit file and a list of environment variables.
    ///
    /// The file is `config_path`, else `SETTINGS_FILE`, else `./settings.yaml` when it exists.
    pub fn load_from(
        config_path: Option<PathBuf>,
        env: &[(String, String)],
    ) -> Result<Self, SettingsError> {
        let env_file = env
            .iter()
            .find(|(k, _)| k == SETTINGS_FILE_ENV)
            .map(|(_, v)| PathBuf::from(v));
        let (path, required) = match config_path.or(env_file) {
            Some(path) => (path, true),
            None => (PathBuf::from(DEFAULT_SETTINGS_FILE), false),
        };
        let mut provenance = Provenance::default();
        let mut tree = match read_file(&path, required)? {
            Some(value) => {
                provenance.file = Some(path);
                value
            }
            None => Value::Mapping(Mapping::new()),
        };
        apply_env(&mut tree, env, &mut provenance)?;
        let settings: Settings = serde_path_to_error::deserialize(tree).map_err(|err| {
            let field = err.path().to_string();
            SettingsError::Invalid {
                origin: provenance.origin_of(&field),
                field,
                reason: err.into_inner().to_string(),
            }
        })?;
        let mut settings = settings;
        if let Some((_, filter)) = env.iter().find(|(k, v)| k == "RUST_LOG" && !v.is_empty()) {
            settings.app.log_level = filter.clone();
            provenance
                .env
                .insert("app.log_level".into(), "RUST_LOG".into());
        }
        settings.validate(&provenance)?;
        Ok(settings)
    }
}

fn parse_config_arg(
    args: impl IntoIterator<Item = String>,
) -> Result<Option<PathBuf>, SettingsError> {
    let mut args = args.into_iter();
    let mut config = None;
    while let Some(arg) = args.next() {
        if arg == "--config" {
            let path = args
                .next()
                .ok_or_else(|| SettingsError::Usage("--config needs a file path".into()))?;
            config = Some(PathBuf::from(path));
        } else if let Some(path) = arg.strip_prefix("--config=") {
            config = Some(PathBuf::from(path));
        } else {
            return Err(SettingsError::Usage(format!(
                "unknown argument {arg:?} (usage: warp-redis-cache [--config PATH])"
            )));
        }
    }
    Ok(config)
}

/// Reads the YAML file; a missing default file is not an error, a missing named one is.
fn read_file(path: &Path, required: bool) -> Result<Option<Value>, SettingsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(SettingsError::Unreadable {
                path: path.to_path_buf(),
                reason: err.to_string(),
            })
        }
    };
    let syntax = |reason: String| SettingsError::Syntax {
        path: path.to_path_buf(),
        reason,
    };
    match serde_yaml::from_str::<Value>(&text).map_err(|e| syntax(e.to_string()))? {
        Value::Null => Ok(Some(Value::Mapping(Mapping::new()))),
        value @ Value::Mapping(_) => Ok(Some(value)),
        _ => Err(syntax("the top level must be a mapping of sections".into())),
    }
}

/// Writes every `SECTION__FIELD` variable into the tree, parsed as a YAML scalar.
fn apply_env(
    tree: &mut Value,
    env: &[(String, String)],
    provenance: &mut Provenance,
) -> Result<(), SettingsError> {
    for (name, raw) in env {
        let Some((section, field)) = name.split_once("__") else {
            continue;
        };
        let section = section.to_ascii_lowercase();
        if !SECTIONS.contains(&section.as_str()) {
            continue;
        }
        let field = field.to_ascii_lowercase();
        let value = env_value(&section, &field, raw);
        let root = tree
            .as_mapping_mut()
            .expect("read_file only returns mappings");
        let section_value = root
            .entry(Value::String(section.clone()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if section_value.is_null() {
            *section_value = Value::Mapping(Mapping::new());
        }
        let Some(section_map) = section_value.as_mapping_mut() else {
            return Err(SettingsError::Invalid {
                field: section.clone(),
                origin: provenance.origin_of(&section),
                reason: "must be a mapping of fields".into(),
            });
        };
        section_map.insert(Value::String(field.clone()), value);
        provenance
            .env
            .insert(format!("{section}.{field}"), name.clone());
    }
    Ok(())
}

/// The value of one environment variable for `section.field`. Numeric and boolean fields
/// (known from the defaults) read it as a YAML scalar (`9000`, `true`); every other field,
/// strings, secrets, enums and lists, takes the text exactly as written: `pa55 #word`,
/// `0x1F`, `1e3`, `null` and the empty string stay what they are.
fn env_value(section: &str, field: &str, raw: &str) -> Value {
    static DEFAULTS: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let defaults = DEFAULTS
        .get_or_init(|| serde_yaml::to_value(Settings::default()).expect("the defaults serialize"));
    let typed = matches!(
        defaults.get(section).and_then(|s| s.get(field)),
        Some(Value::Number(_) | Value::Bool(_))
    );
    if typed {
        if let Ok(scalar @ (Value::Number(_) | Value::Bool(_))) = serde_yaml::from_str(raw) {
            return scalar;
        }
    }
    Value::String(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::LogFormat;
    use warp_redis_cache::{BackendChoice, RedisMode};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_yaml(yaml: &str, vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("settings.yaml");
        std::fs::write(&path, yaml).expect("write settings");
        Settings::load_from(Some(path), &env(vars))
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(load_yaml("", &[]), Ok(Settings::default()));
    }

    #[test]
    fn named_file_must_exist() {
        let vars = env(&[("SETTINGS_FILE", "/nonexistent/settings.yaml")]);
        let err = Settings::load_from(None, &vars).expect_err("missing file");
        assert!(matches!(err, SettingsError::Unreadable { .. }), "{err}");
    }

    #[test]
    fn env_overrides_file() {
        let settings = load_yaml(
            "app:\n  port: 8000\ncache:\n  backend: redis\n",
            &[("APP__PORT", "9000"), ("ADMIN__TOKEN", "1234567890123456")],
        )
        .expect("valid settings");
        assert_eq!(settings.app.port, 9000);
        assert_eq!(settings.cache.backend, BackendChoice::Redis);
        assert_eq!(settings.admin.token.as_deref(), Some("1234567890123456"));
    }

    #[test]
    fn string_settings_from_the_environment_are_taken_literally() {
        for token in [
            "pa55 #word-and-more",
            "0x1F0x1F0x1F0x1F",
            "1e3000000000000000",
            "~~~~~~~~~~~~~~~~",
        ] {
            let settings = load_yaml("", &[("ADMIN__TOKEN", token)]).expect(token);
            assert_eq!(settings.admin.token.as_deref(), Some(token));
        }
        let settings = load_yaml("", &[("CACHE__KEY_PREFIX", "0x1F")]).expect("prefix");
        assert_eq!(settings.cache.key_prefix, "0x1F");
    }

    #[test]
    fn an_empty_short_or_null_token_is_a_startup_error_naming_the_minimum() {
        for token in ["", "null", "~", "0x1F", "short-token"] {
            let err = load_yaml("", &[("ADMIN__TOKEN", token)]).expect_err(token);
            let message = err.to_string();
            assert!(message.contains("admin.token"), "{message}");
            assert!(message.contains("at least 16 bytes"), "{message}");
        }
        let err = load_yaml("admin:\n  token: 0x1F\n", &[]).expect_err("a number");
        assert!(err.to_string().contains("quotes"), "{err}");
        let settings = load_yaml("admin:\n  token: null\n", &[]).expect("no token");
        assert_eq!(settings.admin.token, None);
    }

    #[test]
    fn allowed_hosts_are_a_list_or_a_comma_separated_string() {
        let settings =
            load_yaml("admin:\n  allowed_hosts: [a.internal, B.internal]\n", &[]).expect("list");
        assert_eq!(settings.admin.allowed_hosts, ["a.internal", "b.internal"]);
        let settings = load_yaml("", &[("ADMIN__ALLOWED_HOSTS", "a.internal, b")]).expect("string");
        assert_eq!(settings.admin.allowed_hosts, ["a.internal", "b"]);
        let err = load_yaml("", &[("ADMIN__ALLOWED_HOSTS", "a:80")]).expect_err("port");
        assert!(err.to_string().contains("admin.allowed_hosts"), "{err}");
    }

    #[test]
    fn a_log_filter_env_logger_would_ignore_is_refused_naming_its_origin() {
        let err = load_yaml("", &[("RUST_LOG", "[a]")]).expect_err("bad RUST_LOG");
        assert!(err.to_string().contains("app.log_level"), "{err}");
        assert!(err.to_string().contains("RUST_LOG"), "{err}");
        let err = load_yaml("", &[("APP__LOG_LEVEL", "warp=loud")]).expect_err("bad level");
        assert!(err.to_string().contains("APP__LOG_LEVEL"), "{err}");
        assert!(load_yaml("", &[("RUST_LOG", "warn,hyper=off")]).is_ok());
    }

    #[test]
    fn log_format_is_text_by_default_and_json_on_request() {
        assert_eq!(Settings::default().app.log_format, LogFormat::Text);
        let from_file = load_yaml("app:\n  log_format: json\n", &[]).expect("valid");
        assert_eq!(from_file.app.log_format, LogFormat::Json);
        let from_env = load_yaml("", &[("APP__LOG_FORMAT", "json")]).expect("valid");
        assert_eq!(from_env.app.log_format, LogFormat::Json);
        let err = load_yaml("app:\n  log_format: xml\n", &[]).expect_err("unknown format");
        assert!(err.to_string().contains("app.log_format"), "{err}");
    }

    #[test]
    fn env_values_that_look_like_structures_are_text() {
        let settings = load_yaml(
            "",
            &[("DATABASE__PATH", ":memory:"), ("CACHE__KEY_PREFIX", "[x]")],
        );
        let err = settings.expect_err("a bracketed prefix is not a valid prefix");
        assert!(err.to_string().contains("cache.key_prefix"), "{err}");
        let settings = load_yaml("", &[("DATABASE__PATH", ":memory:")]).expect("valid");
        assert_eq!(settings.database.path, ":memory:");
    }

    #[test]
    fn wrong_type_names_field_and_env_origin() {
        let err = load_yaml("", &[("APP__PORT", "lots")]).expect_err("bad port");
        let message = err.to_string();
        assert!(message.contains("app.port"), "{message}");
        assert!(
            message.contains("environment variable APP__PORT"),
            "{message}"
        );
    }

    #[test]
    fn port_out_of_range_names_file_origin() {
        let err = load_yaml("app:\n  port: 70000\n", &[]).expect_err("bad port");
        let message = err.to_string();
        assert!(message.contains("app.port"), "{message}");
        assert!(message.contains("settings.yaml"), "{message}");
    }

    #[test]
    fn unknown_key_is_rejected() {
        let err = load_yaml("cache:\n  ttl: 5\n", &[]).expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `ttl`"), "{err}");
        let err = load_yaml("", &[("CACHE__TTL", "5")]).expect_err("unknown env key");
        assert!(err.to_string().contains("CACHE__TTL"), "{err}");
    }

    #[test]
    fn zero_ttl_is_rejected() {
        let err = load_yaml("cache:\n  default_ttl_secs: 0\n", &[]).expect_err("zero ttl");
        assert!(err.to_string().contains("cache.default_ttl_secs"), "{err}");
        assert!(err.to_string().contains("greater than zero"), "{err}");
    }

    #[test]
    fn absurd_ttl_and_single_connection_pool_are_rejected() {
        let err = load_yaml("cache:\n  default_ttl_secs: 18446744073709551615\n", &[])
            .expect_err("huge ttl");
        assert!(err.to_string().contains("at most"), "{err}");
        let err =
            load_yaml("redis:\n  max_open: 1\n  max_idle: 1\n", &[]).expect_err("one connection");
        assert!(err.to_string().contains("redis.max_open"), "{err}");
    }

    #[test]
    fn unparsable_url_is_rejected() {
        let err = load_yaml("", &[("REDIS__URL", "not a url")]).expect_err("bad url");
        assert!(err.to_string().contains("redis.url"), "{err}");
        assert!(err.to_string().contains("REDIS__URL"), "{err}");
    }

    #[test]
    fn cluster_mode_takes_several_seed_urls_and_standalone_refuses_them() {
        let seeds = "redis://127.0.0.1:7000,redis://127.0.0.1:7001";
        let settings = load_yaml("redis:\n  mode: cluster\n", &[("REDIS__URL", seeds)])
            .expect("cluster seeds");
        assert_eq!(settings.redis.mode, RedisMode::Cluster);
        assert_eq!(settings.redis.urls().len(), 2);
        let err = load_yaml("", &[("REDIS__URL", seeds)]).expect_err("standalone, two urls");
        assert!(err.to_string().contains("redis.mode: cluster"), "{err}");
        let err = load_yaml("redis:\n  mode: cluster\n  url: redis://h:7000/2\n", &[])
            .expect_err("database 2");
        assert!(err.to_string().contains("database 0 only"), "{err}");
        let err = load_yaml("redis:\n  mode: cluster\n  url: \" , \"\n", &[]).expect_err("no url");
        assert!(err.to_string().contains("redis.url"), "{err}");
        let err = load_yaml("redis:\n  mode: sharded\n", &[]).expect_err("unknown mode");
        assert!(err.to_string().contains("redis.mode"), "{err}");
    }

    #[test]
    fn database_url_is_empty_by_default_and_takes_postgres_urls() {
        let settings = load_yaml("", &[]).expect("defaults");
        assert!(!settings.database.is_postgres());
        assert_eq!(settings.database.location(), "items.sqlite3");
        for url in [
            "postgres://app@db/items",
            "postgresql://app:pw@127.0.0.1:5433/items",
        ] {
            let settings = load_yaml("", &[("DATABASE__URL", url)]).expect(url);
            assert_eq!(settings.database.url, url);
            assert!(settings.database.is_postgres());
        }
        let settings =
            load_yaml("database:\n  url: postgres://app@db/items\n", &[]).expect("url in the file");
        assert!(settings.database.is_postgres());
    }

    #[test]
    fn a_database_url_that_is_not_postgres_is_one_clear_line_without_the_password() {
        for url in [
            "mysql://app:hunter2@db/items",
            "items.sqlite3",
            "postgres://app:hunter2@db:port/items",
        ] {
            let err = load_yaml("", &[("DATABASE__URL", url)]).expect_err(url);
            let message = err.to_string();
            assert!(message.contains("setting database.url"), "{message}");
            assert!(message.contains("DATABASE__URL"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn debug_output_hides_the_database_password() {
        let settings =
            load_yaml("", &[("DATABASE__URL", "postgres://app:hunter2@db/items")]).expect("valid");
        let shown = format!("{settings:?}");
        assert!(shown.contains("postgres://app:***@db/items"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn debug_output_hides_the_admin_token() {
        let settings =
            load_yaml("", &[("ADMIN__TOKEN", "hunter2-hunter2-hunter2")]).expect("valid");
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("token: Some(\"***\")"), "{shown}");
    }

    #[test]
    fn invalid_yaml_names_the_file() {
        let err = load_yaml("app: [unclosed", &[]).expect_err("bad yaml");
        assert!(matches!(err, SettingsError::Syntax { .. }), "{err}");
    }

    #[test]
    fn config_argument_is_parsed() {
        let path = parse_config_arg(["--config".to_string(), "x.yaml".to_string()]);
        assert_eq!(path, Ok(Some(PathBuf::from("x.yaml"))));
        assert!(parse_config_arg(["--bogus".to_string()]).is_err());
        assert!(parse_config_arg(["--config".to_string()]).is_err());
    }
}
