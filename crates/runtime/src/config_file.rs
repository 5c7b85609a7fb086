//! Config files for any binary whose `Args` has a `--config PATH` flag:
//! TOML (`.toml`) or YAML (`.yaml`, `.yml`), one key per long flag name
//! (`grace-period = "5s"`, or `grace_period`), lists for repeatable flags.
//!
//! The file's values become clap defaults, so the precedence podkit
//! asks for falls out of clap itself: flag > environment > config file >
//! built-in default. An unknown key, or a value of the wrong shape, is a
//! configuration error naming the key and the file.
//!
//! The parsers are compiled only with the crate's `config-file` feature
//! (the binaries that take `--config` enable it).
//!
//! Tables (`[section]`, `[[section]]`) are not flags: they are left to the
//! binary, which reads them with [`read`] and must reject the ones it does
//! not know (the ambassador's `[[listener]]` is one).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Command;
use clap::builder::{ArgAction, OsStr};
use serde::Deserialize;

/// A value in a config file, as far as flags are concerned.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Table(BTreeMap<String, Value>),
}

impl Value {
    fn scalar(&self) -> Option<String> {
        match self {
            Self::Bool(b) => Some(b.to_string()),
            Self::Int(i) => Some(i.to_string()),
            Self::Float(f) => Some(f.to_string()),
            Self::Str(s) => Some(s.clone()),
            Self::List(_) | Self::Table(_) => None,
        }
    }

    /// A table or a list of tables: a section for the binary, not a flag.
    fn is_section(&self) -> bool {
        match self {
            Self::Table(_) => true,
            Self::List(items) => !items.is_empty() && items.iter().all(|v| matches!(v, Self::Table(_))),
            _ => false,
        }
    }
}

/// Finds the config file the user named, on the command line
/// (`--config PATH`, `--config=PATH`) or in the flag's env twin.
pub(crate) fn requested(command: &Command, args: &[OsString]) -> Option<PathBuf> {
    let arg = command.get_arguments().find(|a| a.get_id() == "config")?;
    let long = format!("--{}", arg.get_long()?);
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if *a == *long {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a
            .to_str()
            .and_then(|s| s.strip_prefix(&long))
            .and_then(|s| s.strip_prefix('='))
        {
            return Some(PathBuf::from(v));
        }
    }
    let env = arg.get_env()?;
    std::env::var_os(env).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Reads `path` and turns its keys into defaults of `command`'s arguments.
pub(crate) fn apply(command: Command, path: &Path) -> Result<Command, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let values: BTreeMap<String, Value> = parse(path, &text)?;
    let mut command = command;
    for (key, value) in values {
        if value.is_section() {
            continue;
        }
        let flag = key.replace('_', "-");
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()) && a.get_id() != "config")
        else {
            return Err(format!("unknown key `{key}` in config file {}", path.display()));
        };
        let id = arg.get_id().clone();
        let takes_many =
            matches!(arg.get_action(), ArgAction::Append) || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        let defaults: Vec<String> = match (&value, takes_many) {
            (Value::List(items), true) => items
                .iter()
                .map(|v| {
                    v.scalar()
                        .ok_or_else(|| format!("`{key}` in {}: nested lists are not allowed", path.display()))
                })
                .collect::<Result<_, _>>()?,
            (Value::List(_), false) => {
                return Err(format!("`{key}` in {} takes one value, not a list", path.display()));
            }
            (scalar, _) => vec![scalar.scalar().unwrap_or_default()],
        };
        let defaults: Vec<OsStr> = defaults.into_iter().map(OsStr::from).collect();
        command = command.mut_arg(id, |a| a.required(false).default_values(defaults));
    }
    Ok(command)
}

/// The top-level values of a config file, keys as written (for the reload's
/// "what changed" comparison).
#[cfg(feature = "config-file")]
pub(crate) fn values(path: &Path) -> Result<BTreeMap<String, Value>, String> {
    read(path)
}

/// Reads a config file (TOML or YAML, by extension) into `T`: how a binary
/// gets at its own sections.
pub fn read<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    parse(path, &text)
}

#[cfg(feature = "config-file")]
fn parse<T: serde::de::DeserializeOwned + Default>(path: &Path, text: &str) -> Result<T, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "toml" => toml::from_str(text).map_err(|e| format!("config file {}: {e}", path.display())),
        "yaml" | "yml" => serde_saphyr::from_str::<Option<T>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|e| format!("config file {}: {e}", path.display())),
        _ => Err(format!(
            "config file {} must end in .toml, .yaml or .yml",
            path.display()
        )),
    }
}

/// Without the `config-file` feature no parser is compiled in.
#[cfg(not(feature = "config-file"))]
fn parse<T: serde::de::DeserializeOwned + Default>(path: &Path, _text: &str) -> Result<T, String> {
    Err(format!(
        "config file {}: this binary is built without config-file support",
        path.display()
    ))
}

#[cfg(all(test, feature = "config-file"))]
mod tests {
    use std::time::Duration;

    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Debug, Parser, PartialEq)]
    struct Args {
        #[arg(long, env = "T_CONFIG_FILE_TEST_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, default_value = "1s", value_parser = crate::cli::parse_duration)]
        grace_period: Duration,
        #[arg(long = "route")]
        routes: Vec<String>,
        #[arg(long)]
        verbose: bool,
        #[arg(long, default_value_t = 3)]
        retries: u32,
    }

    fn parse_with(file: &Path, argv: &[&str]) -> Result<Args, String> {
        let args: Vec<OsString> = std::iter::once("t")
            .chain(argv.iter().copied())
            .map(OsString::from)
            .collect();
        let command = Args::command();
        let command = match requested(&command, &args) {
            Some(path) => {
                assert_eq!(path, file);
                apply(command, &path)?
            }
            None => command,
        };
        let mut matches = command.try_get_matches_from(args).map_err(|e| e.to_string())?;
        Args::from_arg_matches_mut(&mut matches).map_err(|e| e.to_string())
    }

    fn file(name: &str, body: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join(name);
        std::fs::write(&path, body).unwrap();
        (dir, path)
    }

    /// A throwaway directory, removed on drop (the runtime has no tempfile dependency).
    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "podkit-runtime-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn file_values_sit_between_flags_and_defaults() {
        let (_d, path) = file(
            "c.toml",
            "grace-period = \"5s\"\nroute = [\"a=b\", \"c=d\"]\nverbose = true\nretries = 7\n",
        );
        let p = path.to_str().unwrap();
        let a = parse_with(&path, &["--config", p]).unwrap();
        assert_eq!(a.grace_period, Duration::from_secs(5));
        assert_eq!(a.routes, ["a=b", "c=d"]);
        assert!(a.verbose);
        assert_eq!(a.retries, 7);
        // A flag wins over the file, for single and repeatable options.
        let a = parse_with(
            &path,
            &[&format!("--config={p}"), "--grace-period", "9s", "--route", "x=y"],
        )
        .unwrap();
        assert_eq!(a.grace_period, Duration::from_secs(9));
        assert_eq!(a.routes, ["x=y"]);
    }

    #[test]
    fn tables_are_sections_left_to_the_binary() {
        let (_d, path) = file(
            "c.toml",
            "retries = 2\n[[route-table]]\nname = \"a\"\n[[route-table]]\nname = \"b\"\n[extra]\nx = 1\n",
        );
        let a = parse_with(&path, &["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(a.retries, 2);
        #[derive(Debug, Default, Deserialize)]
        struct Sections {
            #[serde(rename = "route-table", default)]
            route_table: Vec<BTreeMap<String, String>>,
        }
        let sections: Sections = read(&path).unwrap();
        assert_eq!(sections.route_table.len(), 2);
        assert_eq!(sections.route_table[1]["name"], "b");
    }

    #[test]
    fn yaml_works_and_snake_case_keys_are_accepted() {
        let (_d, path) = file("c.yaml", "grace_period: 250ms\nroute:\n  - a=b\n");
        let a = parse_with(&path, &["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(a.grace_period, Duration::from_millis(250));
        assert_eq!(a.routes, ["a=b"]);
    }

    #[test]
    fn mistakes_are_named() {
        for (name, body, expect) in [
            ("c.toml", "gracePeriod = \"5s\"\n", "unknown key `gracePeriod`"),
            ("c.toml", "retries = [1, 2]\n", "takes one value"),
            ("c.toml", "retries = \n", "c.toml"),
            ("c.json", "{}", "must end in .toml"),
            ("c.yaml", "route: [[a]]\n", "nested lists"),
        ] {
            let (_d, path) = file(name, body);
            let err = parse_with(&path, &["--config", path.to_str().unwrap()]).unwrap_err();
            assert!(err.contains(expect), "{body:?}: {err}");
        }
        let (_d, path) = file("c.toml", "grace-period = \"soon\"\n");
        let err = parse_with(&path, &["--config", path.to_str().unwrap()]).unwrap_err();
        assert!(err.contains("soon"), "{err}");
    }
}
