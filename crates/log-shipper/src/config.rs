//! [`Config`]: the flags and the config file's `[[source]]`/`[[sink]]`
//! sections, validated. Every mistake is a [`ConfigError`] (exit 64) naming
//! the flag, or the key and the file.
//!
//! Sections inherit the top-level options (flags, env, top-level keys) and
//! override them key by key, so `batch-timeout = "1s"` at the top applies
//! to every sink that does not say otherwise. `--label`s apply to every
//! source; a section's `labels` add to them (and win on the same key).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use podkit_runtime::ConfigError;
use podkit_runtime::cli::{parse_duration, parse_size};
use serde::Deserialize;

use crate::args::{Args, Compression, EsAction, Format, LongLines, OnReject, StartAt, WireEncoding};
use crate::rec::Matcher;
use crate::rec::timestamp::TimestampParser;
use crate::record::RESERVED_KEYS;
use crate::sink::platform::{Api, IndexPattern};

/// The validated configuration [`run`](crate::run) works from.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to follow; each source has its own tailer and checkpoint.
    pub sources: Vec<SourceConfig>,
    /// Where every line goes.
    pub sinks: Vec<SinkConfig>,
    /// Checkpoints and dead letters; `None` with `--no-checkpoint` alone.
    pub state_dir: Option<PathBuf>,
    /// Whether checkpoints are kept.
    pub checkpoint: bool,
    /// Serve mode, when `--serve` is given (alone or beside shipping).
    pub serve: Option<crate::serve::ServeConfig>,
}

/// One source: files followed by one tailer, parsed one way, labelled.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Its name, in metrics (`source`) and in the checkpoint's file name.
    pub name: String,
    /// Paths and globs.
    pub include: Vec<String>,
    /// Globs never followed.
    pub exclude: Vec<String>,
    /// Where to start in files without a checkpoint.
    pub start_at: StartAt,
    /// Longest line in one record.
    pub max_line_bytes: usize,
    /// What happens to longer lines.
    pub long_lines: LongLines,
    /// How lines become fields.
    pub parse: Parse,
    /// The field that holds the event time, and how to read it.
    pub timestamp_field: Option<String>,
    /// Parses the timestamp field.
    pub timestamp_parser: TimestampParser,
    /// Labels added to every record, in order, keys unique.
    pub labels: Vec<(String, String)>,
    /// How lines become records: container log pieces, multiline rules,
    /// node mode's labels (see [`crate::assemble`]).
    pub assemble: crate::assemble::Settings,
}

/// How a source's lines are parsed.
#[derive(Debug, Clone)]
pub enum Parse {
    /// Not at all: the line is the record's `message`.
    None,
    /// As a JSON object whose keys become the record's.
    Json,
    /// With a regex's named captures.
    Regex(Box<Matcher>),
}

/// One sink: where records go, how they are encoded and delivered.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Its name, in metrics (`sink`), logs and the dead-letter file name.
    pub name: String,
    /// The kind and its settings.
    pub kind: SinkKind,
    /// Record encoding.
    pub format: Format,
    /// When a batch is sent.
    pub batch: BatchLimits,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// What happens to rejected batches.
    pub on_reject: OnReject,
    /// The dead-letter file, for `on_reject = dead-letter`.
    pub dead_letter: Option<PathBuf>,
    /// The dead-letter file's size cap (it is rotated to `FILE.1` before it
    /// would pass it).
    pub dead_letter_max_size: u64,
}

/// The kinds of sink.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// Standard output.
    Stdout,
    /// A file, size-rotated.
    File {
        /// Absolute path.
        path: PathBuf,
        /// Rotate before this size.
        max_size: Option<u64>,
        /// Rotated files kept.
        keep: usize,
    },
    /// An HTTP(S) endpoint receiving POSTs.
    Http(Box<HttpConfig>),
}

/// An HTTP sink's settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The URL POSTed to (a platform's standard path included).
    pub uri: Uri,
    /// The platform API it speaks (body layout, answers), or plain HTTP.
    pub api: Api,
    /// For `https`: the client config and the name to verify.
    pub tls: Option<HttpsConfig>,
    /// Headers sent with every request (custom, auth), content type excluded.
    pub headers: HeaderMap,
    /// Body compression.
    pub compression: Compression,
    /// Longest time for one request, connecting included.
    pub request_timeout: Duration,
}

/// TLS of an https sink, loaded and checked at start.
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    /// Trust, client certificate, ALPN `http/1.1`.
    pub client: std::sync::Arc<podkit_tls::rustls::ClientConfig>,
    /// The name sent as SNI and verified.
    pub server_name: podkit_tls::rustls::pki_types::ServerName<'static>,
}

/// When a sink's batch is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most records per batch.
    pub max_lines: usize,
    /// Most bytes per batch (before compression).
    pub max_bytes: usize,
    /// Longest wait of a record for its batch to fill.
    pub timeout: Duration,
}

/// How a sink retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries before a batch is handled as rejected; `None`: forever.
    pub max: Option<u32>,
    /// Longest backoff delay.
    pub max_delay: Duration,
}

/// The flag a message names, or the key and file.
#[derive(Debug, Clone)]
enum Origin<'a> {
    Flags,
    Section {
        file: &'a Path,
        kind: &'static str,
        index: usize,
    },
}

impl Origin<'_> {
    /// How to name option `flag` (spelt as a flag) in an error.
    fn name(&self, flag: &str) -> String {
        match self {
            Self::Flags => format!("--{flag}"),
            Self::Section { file, kind, index } => format!(
                "`{}` in [[{kind}]] #{} of {}",
                flag.replace('-', "_"),
                index + 1,
                file.display()
            ),
        }
    }

    fn error(&self, flag: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::new(format!("{}: {message}", self.name(flag)))
    }
}

impl Config {
    /// Validates the arguments (and the config file's sections); an error
    /// here exits 64. Reads the variables and files that labels, headers and
    /// secrets name.
    pub fn from_args(args: Args) -> anyhow::Result<Self> {
        Self::from_args_with_env(args, |name| std::env::var(name).ok())
    }

    /// [`Config::from_args`] with an explicit environment lookup (tests).
    pub fn from_args_with_env(args: Args, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut serve = crate::serve::ServeConfig::from_args(args.serve.clone())?;
        if let (Some(serve), Some(state)) = (&mut serve, &args.state_dir) {
            serve.hide(state);
        }
        let sections = match &args.config {
            Some(path) => Sections::read(path)?,
            None => Sections::default(),
        };
        let file = args.config.clone().unwrap_or_default();
        let in_file = match &args.config {
            Some(path) => format!(" (in config file {})", path.display()),
            None => String::new(),
        };

        let mut labels = Vec::new();
        for l in &args.labels {
            let (k, v) = key_value(&Origin::Flags, "label", l)?;
            set_label(&mut labels, &Origin::Flags, "label", k, v)?;
        }
        for l in &args.labels_from_env {
            let (k, var) = key_value(&Origin::Flags, "label-from-env", l)?;
            let value = env(var.trim()).ok_or_else(|| {
                Origin::Flags.error(
                    "label-from-env",
                    format!("environment variable {} is not set (in {l})", var.trim()),
                )
            })?;
            set_label(&mut labels, &Origin::Flags, "label-from-env", k, value)?;
        }

        let mut sources = Vec::new();
        let top = SourceSection::default();
        if !args.follow.is_empty() || args.kubernetes_node {
            sources.push(source(&args, &top, &Origin::Flags, "default".into(), &labels, &env)?);
        }
        for (index, parsed) in sections_of::<SourceSection>(sections.source, &file, "source").enumerate() {
            let (origin, section) = parsed?;
            let name = section.name.clone().unwrap_or_else(|| format!("source-{}", index + 1));
            check_name(&origin, &name)?;
            if section.follow.is_empty() && section.kubernetes_node != Some(true) {
                return Err(origin
                    .error(
                        "follow",
                        "a [[source]] needs `follow` (a path, a glob or a list), or `kubernetes_node = true`",
                    )
                    .into());
            }
            sources.push(source(&args, &section, &origin, name, &labels, &env)?);
        }
        for (i, s) in sources.iter().enumerate() {
            if sources[..i].iter().any(|o| o.name == s.name) {
                return Err(ConfigError::new(format!(
                    "two sources are named `{}`: give each its own `name`{in_file}",
                    s.name
                ))
                .into());
            }
        }

        let checkpoint = !args.no_checkpoint;
        let state_dir = args.state_dir.clone();
        if checkpoint && state_dir.is_none() && !sources.is_empty() {
            return Err(ConfigError::new(
                "--state-dir: give a writable directory for checkpoints (e.g. an emptyDir or hostPath volume), \
                 or --no-checkpoint to run without them",
            )
            .into());
        }
        if let Some(dir) = &state_dir {
            check_state_dir(dir)?;
        }

        let mut sinks: Vec<SinkConfig> = Vec::new();
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        let top = SinkSection::default();
        for url in &args.sinks {
            let sink = sink(
                &args,
                &top,
                url,
                &Origin::Flags,
                None,
                &mut counts,
                state_dir.as_deref(),
                &env,
            )?;
            sinks.push(sink);
        }
        for parsed in sections_of::<SinkSection>(sections.sink, &file, "sink") {
            let (origin, section) = parsed?;
            let Some(url) = section.url.clone() else {
                return Err(origin.error("url", "a [[sink]] needs `url`").into());
            };
            let name = section.name.clone();
            if let Some(name) = &name {
                check_name(&origin, name)?;
            }
            sinks.push(sink(
                &args,
                &section,
                &url,
                &origin,
                name,
                &mut counts,
                state_dir.as_deref(),
                &env,
            )?);
        }
        for (i, s) in sinks.iter().enumerate() {
            if sinks[..i].iter().any(|o| o.name == s.name) {
                return Err(ConfigError::new(format!(
                    "two sinks are named `{}`: give each its own `name`{in_file}",
                    s.name
                ))
                .into());
            }
        }

        // Serve mode alone, without sources or sinks, is valid.
        if sources.is_empty() && sinks.is_empty() && serve.is_some() {
            return Ok(Self {
                sources,
                sinks,
                state_dir,
                checkpoint,
                serve,
            });
        }
        if sources.is_empty() {
            return Err(ConfigError::new(
                "nothing to follow: give --follow PATH|GLOB (or [[source]] sections in --config)",
            )
            .into());
        }
        if sinks.is_empty() {
            return Err(ConfigError::new(
                "--sink: nothing to ship to: give --sink stdout, file:///ABS/PATH or http://… \
                 (or [[sink]] sections in --config)",
            )
            .into());
        }
        Ok(Self {
            sources,
            sinks,
            state_dir,
            checkpoint,
            serve,
        })
    }
}

/// A `[[source]]` section; every key but `follow` defaults to the top-level option.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSection {
    name: Option<String>,
    #[serde(default)]
    follow: OneOrMany,
    #[serde(default)]
    follow_exclude: OneOrMany,
    start_at: Option<StartAt>,
    max_line_bytes: Option<Size>,
    long_lines: Option<LongLines>,
    parse: Option<String>,
    timestamp_field: Option<String>,
    timestamp_format: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    labels_from_env: BTreeMap<String, String>,
    multiline: Option<String>,
    multiline_start: Option<String>,
    multiline_max_lines: Option<usize>,
    multiline_max_bytes: Option<Size>,
    multiline_flush_timeout: Option<String>,
    container_format: Option<crate::cri::ContainerFormat>,
    kubernetes_node: Option<bool>,
    kubernetes_log_root: Option<PathBuf>,
}

/// A `[[sink]]` section; every key but `url` defaults to the top-level option.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkSection {
    url: Option<String>,
    name: Option<String>,
    format: Option<Format>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    headers_from_env: BTreeMap<String, String>,
    #[serde(default)]
    headers_from_file: BTreeMap<String, PathBuf>,
    basic_auth_user: Option<String>,
    basic_auth_password_file: Option<PathBuf>,
    basic_auth_password: Option<String>,
    bearer_token_file: Option<PathBuf>,
    bearer_token: Option<String>,
    compression: Option<Compression>,
    batch_max_lines: Option<usize>,
    batch_max_bytes: Option<Size>,
    batch_timeout: Option<String>,
    retry_max: Option<u32>,
    retry_max_delay: Option<String>,
    request_timeout: Option<String>,
    on_reject: Option<OnReject>,
    dead_letter_max_size: Option<Size>,
    loki_tenant: Option<String>,
    loki_max_streams: Option<usize>,
    loki_encoding: Option<WireEncoding>,
    otlp_encoding: Option<WireEncoding>,
    es_index: Option<String>,
    es_action: Option<EsAction>,
    file_max_size: Option<Size>,
    file_keep: Option<usize>,
    tls_ca_file: Option<PathBuf>,
    tls_client_cert: Option<PathBuf>,
    tls_client_key: Option<PathBuf>,
    tls_insecure: Option<bool>,
    tls_server_name: Option<String>,
}

impl SinkSection {
    /// The TLS options: the top-level ones, overridden key by key.
    fn tls(&self, top: &podkit_tls::TlsOptions) -> podkit_tls::TlsOptions {
        let mut o = top.clone();
        if let Some(v) = &self.tls_ca_file {
            o.ca_file = Some(v.clone());
        }
        if let Some(v) = &self.tls_client_cert {
            o.client_cert = Some(v.clone());
        }
        if let Some(v) = &self.tls_client_key {
            o.client_key = Some(v.clone());
        }
        if let Some(v) = self.tls_insecure {
            o.insecure = v;
        }
        if let Some(v) = &self.tls_server_name {
            o.server_name = Some(v.clone());
        }
        o
    }
}

/// A string or a list of strings.
#[derive(Debug, Default, Deserialize)]
#[serde(from = "OneOrManyRaw")]
struct OneOrMany(Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrManyRaw {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrManyRaw> for OneOrMany {
    fn from(raw: OneOrManyRaw) -> Self {
        match raw {
            OneOrManyRaw::One(s) => Self(vec![s]),
            OneOrManyRaw::Many(v) => Self(v),
        }
    }
}

impl OneOrMany {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A size: a number of bytes or a string like `1MiB`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self, origin: &Origin<'_>, flag: &str) -> Result<u64, ConfigError> {
        match self {
            Self::Bytes(n) => Ok(*n),
            Self::Text(s) => parse_size(s).map_err(|e| origin.error(flag, e)),
        }
    }
}

/// The config file's sections.
#[derive(Debug, Default)]
struct Sections {
    source: Vec<serde_json::Value>,
    sink: Vec<serde_json::Value>,
}

impl Sections {
    fn read(path: &Path) -> Result<Self, ConfigError> {
        #[derive(Debug, Default, Deserialize)]
        struct Raw {
            #[serde(flatten)]
            all: BTreeMap<String, serde_json::Value>,
        }
        let raw: Raw =
            podkit_runtime::config_file::read(path).map_err(|e| ConfigError::new(format!("--config: {e}")))?;
        let mut sections = Self::default();
        for (key, value) in raw.all {
            let is_section = match &value {
                serde_json::Value::Object(_) => true,
                serde_json::Value::Array(items) => !items.is_empty() && items.iter().all(serde_json::Value::is_object),
                _ => false,
            };
            if !is_section {
                // Flags: the runtime checked them already.
                continue;
            }
            let items = match value {
                serde_json::Value::Array(items) => items,
                one => vec![one],
            };
            match key.as_str() {
                "source" => sections.source = items,
                "sink" => sections.sink = items,
                _ => {
                    return Err(ConfigError::new(format!(
                        "unknown section `{key}` in config file {}: sections are [[source]] and [[sink]]",
                        path.display()
                    )));
                }
            }
        }
        Ok(sections)
    }
}

/// The `[[kind]]` sections of `file`, each deserialized with the origin
/// its errors name.
fn sections_of<'f, T: serde::de::DeserializeOwned>(
    values: Vec<serde_json::Value>,
    file: &'f Path,
    kind: &'static str,
) -> impl Iterator<Item = Result<(Origin<'f>, T), ConfigError>> + 'f {
    values.into_iter().enumerate().map(move |(index, value)| {
        let origin = Origin::Section { file, kind, index };
        let parsed = section(value, &origin)?;
        Ok((origin, parsed))
    })
}

/// Deserializes one section, accepting `kebab-case` keys too.
fn section<T: serde::de::DeserializeOwned>(value: serde_json::Value, origin: &Origin<'_>) -> Result<T, ConfigError> {
    let value = match value {
        serde_json::Value::Object(map) => {
            serde_json::Value::Object(map.into_iter().map(|(k, v)| (k.replace('-', "_"), v)).collect())
        }
        other => other,
    };
    serde_json::from_value(value).map_err(|e| {
        let Origin::Section { file, kind, index } = origin else {
            return ConfigError::new(e.to_string());
        };
        ConfigError::new(format!(
            "[[{kind}]] #{} in config file {}: {e}",
            index + 1,
            file.display()
        ))
    })
}

fn check_name(origin: &Origin<'_>, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(origin.error(
            "name",
            format!("`{name}` must be ASCII letters, digits, '-', '_' or '.'"),
        ))
    }
}

/// Splits `KEY=VALUE`.
fn key_value<'s>(origin: &Origin<'_>, flag: &str, s: &'s str) -> Result<(&'s str, &'s str), ConfigError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v)),
        _ => Err(origin.error(flag, format!("`{s}` is not KEY=VALUE"))),
    }
}

fn set_label(
    labels: &mut Vec<(String, String)>,
    origin: &Origin<'_>,
    flag: &str,
    key: &str,
    value: impl Into<String>,
) -> Result<(), ConfigError> {
    if RESERVED_KEYS.contains(&key) {
        return Err(origin.error(
            flag,
            format!("`{key}` is a key every record has already; choose another label name"),
        ));
    }
    let value = value.into();
    match labels.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => labels.push((key.to_owned(), value)),
    }
    Ok(())
}

fn source(
    args: &Args,
    s: &SourceSection,
    origin: &Origin<'_>,
    name: String,
    global_labels: &[(String, String)],
    env: &impl Fn(&str) -> Option<String>,
) -> Result<SourceConfig, ConfigError> {
    let mut include = if s.follow.is_empty() && matches!(origin, Origin::Flags) {
        args.follow.clone()
    } else {
        s.follow.0.clone()
    };
    let mut exclude = if s.follow_exclude.is_empty() {
        args.follow_exclude.clone()
    } else {
        s.follow_exclude.0.clone()
    };
    // Node mode is a property of the flags' source or of one section, not
    // inherited by every section.
    let kubernetes = match origin {
        Origin::Flags => args.kubernetes_node,
        Origin::Section { .. } => s.kubernetes_node.unwrap_or(false),
    };
    if kubernetes {
        let root = s.kubernetes_log_root.as_deref().unwrap_or(&args.kubernetes_log_root);
        if !root.is_absolute() {
            return Err(origin.error(
                "kubernetes-log-root",
                format!("`{}` is not an absolute path", root.display()),
            ));
        }
        include.push(crate::kubernetes::include(root));
        exclude.extend(crate::kubernetes::exclude());
    }
    let max_line_bytes = size(origin, "max-line-bytes", s.max_line_bytes.as_ref(), args.max_line_bytes)?;
    let max_line_bytes = size_within(origin, "max-line-bytes", max_line_bytes, 1..=1 << 30, "1 byte and 1GiB")?;
    let parse_text = s.parse.as_deref().unwrap_or(&args.parse);
    let parse = match parse_text.trim() {
        "" | "none" => Parse::None,
        "json" => Parse::Json,
        other => match other.strip_prefix("regex:") {
            Some(pattern) => Parse::Regex(Box::new(
                Matcher::new(pattern).map_err(|e| origin.error("parse", format!("bad regex: {e}")))?,
            )),
            None => {
                return Err(origin.error("parse", format!("`{other}` is not none, json or regex:PATTERN")));
            }
        },
    };
    let timestamp_field = s.timestamp_field.clone().or_else(|| args.timestamp_field.clone());
    let timestamp_field = match (&parse, timestamp_field) {
        (Parse::None, Some(_)) => {
            return Err(origin.error(
                "timestamp-field",
                "needs --parse json or regex:… (fields to take it from)",
            ));
        }
        (Parse::None, None) => None,
        (_, field) => Some(field.unwrap_or_else(|| "timestamp".to_owned())),
    };
    let format = s.timestamp_format.as_deref().or(args.timestamp_format.as_deref());
    let timestamp_parser = TimestampParser::new(format).map_err(|e| origin.error("timestamp-format", e))?;
    let mut labels = global_labels.to_vec();
    for (k, v) in &s.labels {
        set_label(&mut labels, origin, "labels", k, v.clone())?;
    }
    for (k, var) in &s.labels_from_env {
        let value = env(var)
            .ok_or_else(|| origin.error("labels-from-env", format!("environment variable {var} is not set")))?;
        set_label(&mut labels, origin, "labels-from-env", k, value)?;
    }
    let assemble = assemble_settings(args, s, origin, kubernetes)?;
    Ok(SourceConfig {
        assemble,
        name,
        include,
        exclude,
        start_at: s.start_at.unwrap_or(args.start_at),
        max_line_bytes,
        long_lines: s.long_lines.unwrap_or(args.long_lines),
        parse,
        timestamp_field,
        timestamp_parser,
        labels,
    })
}

/// The multiline and container-format settings of a source.
fn assemble_settings(
    args: &Args,
    s: &SourceSection,
    origin: &Origin<'_>,
    kubernetes: bool,
) -> Result<crate::assemble::Settings, ConfigError> {
    use crate::multiline::Rule;
    let builtin = s.multiline.as_deref().or(args.multiline.as_deref());
    let start = s.multiline_start.as_deref().or(args.multiline_start.as_deref());
    let rule = match (builtin, start) {
        (Some(_), Some(_)) => {
            return Err(origin.error(
                "multiline",
                "give either a built-in rule or --multiline-start REGEX, not both",
            ));
        }
        (Some(name), None) => Some(
            Rule::builtin(name.trim())
                .ok_or_else(|| origin.error("multiline", format!("`{name}` is not java, python, go or node")))?,
        ),
        (None, Some(re)) => {
            Some(Rule::Start(regex::bytes::Regex::new(re).map_err(|e| {
                origin.error("multiline-start", format!("bad regex: {e}"))
            })?))
        }
        (None, None) => None,
    };
    let max_lines = s.multiline_max_lines.unwrap_or(args.multiline_max_lines);
    if max_lines == 0 {
        return Err(origin.error("multiline-max-lines", "must be at least 1"));
    }
    let max_bytes = match &s.multiline_max_bytes {
        Some(size) => size.bytes(origin, "multiline-max-bytes")?,
        None => args.multiline_max_bytes,
    };
    let max_bytes = usize::try_from(max_bytes)
        .ok()
        .filter(|&n| n > 0 && n <= 1 << 30)
        .ok_or_else(|| origin.error("multiline-max-bytes", "must be between 1 byte and 1GiB"))?;
    let flush_after = match &s.multiline_flush_timeout {
        Some(text) => parse_duration(text).map_err(|e| origin.error("multiline-flush-timeout", e))?,
        None => args.multiline_flush_timeout,
    };
    let mut format = s.container_format.unwrap_or(args.container_format);
    if kubernetes && format == crate::cri::ContainerFormat::None {
        format = crate::cri::ContainerFormat::Auto;
    }
    Ok(crate::assemble::Settings {
        format,
        rule,
        max_lines,
        max_bytes,
        flush_after,
        kubernetes,
    })
}

fn check_state_dir(dir: &Path) -> Result<(), ConfigError> {
    let bad = |e: std::io::Error| {
        ConfigError::new(format!(
            "--state-dir: {} is not a writable directory: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(bad)?;
    let probe = dir.join(format!(".log-shipper-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(bad)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn sink(
    args: &Args,
    s: &SinkSection,
    url: &str,
    origin: &Origin<'_>,
    name: Option<String>,
    counts: &mut BTreeMap<&'static str, usize>,
    state_dir: Option<&Path>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<SinkConfig, ConfigError> {
    let flag = match origin {
        Origin::Flags => "sink",
        Origin::Section { .. } => "url",
    };
    let format = s.format.unwrap_or(args.format);
    let url = url.trim();
    let (kind_name, kind) = if url == "stdout" || url == "stdout:" || url == "stdout://" {
        ("stdout", SinkKind::Stdout)
    } else if let Some(path) = url.strip_prefix("file://") {
        let path = PathBuf::from(path);
        if !path.is_absolute() || path.file_name().is_none() {
            return Err(origin.error(
                flag,
                format!("`{url}` is not file:///ABS/PATH (three slashes, an absolute path to a file)"),
            ));
        }
        let max_size = match &s.file_max_size {
            Some(size) => Some(size.bytes(origin, "file-max-size")?),
            None => args.file_max_size,
        };
        if max_size == Some(0) {
            return Err(origin.error("file-max-size", "must be more than 0"));
        }
        (
            "file",
            SinkKind::File {
                path,
                max_size,
                keep: s.file_keep.unwrap_or(args.file_keep),
            },
        )
    } else if url.starts_with("http://") || url.starts_with("https://") {
        let http = http_sink(args, s, origin, flag, url, url, Api::Plain, env)?;
        ("http", SinkKind::Http(http))
    } else if let Some((kind_name, base)) = platform_url(url) {
        if s.format.is_some() {
            return Err(origin.error("format", format!("{kind_name} sinks have their own wire format")));
        }
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(origin.error(
                flag,
                format!("`{url}` is not {kind_name}:http://HOST[:PORT] (or https://)"),
            ));
        }
        let api = match kind_name {
            "loki" => {
                let max_streams = s.loki_max_streams.unwrap_or(args.loki_max_streams);
                if max_streams == 0 {
                    return Err(origin.error("loki-max-streams", "must be at least 1"));
                }
                let encoding = s.loki_encoding.unwrap_or(args.loki_encoding);
                if encoding == WireEncoding::Protobuf && s.compression == Some(Compression::Gzip) {
                    return Err(origin.error(
                        "compression",
                        "a protobuf Loki push is snappy-compressed; gzip does not apply to it",
                    ));
                }
                Api::Loki { max_streams, encoding }
            }
            "otlp" => Api::Otlp {
                encoding: s.otlp_encoding.unwrap_or(args.otlp_encoding),
            },
            _ => {
                let text = s.es_index.as_deref().unwrap_or(&args.es_index);
                let index = IndexPattern::new(text).map_err(|e| origin.error("es-index", e))?;
                Api::Elasticsearch {
                    index,
                    action: s.es_action.unwrap_or(args.es_action),
                }
            }
        };
        let full = format!("{}{}", base.trim_end_matches('/'), api.path());
        let mut http = http_sink(args, s, origin, flag, url, &full, api, env)?;
        if matches!(
            http.api,
            Api::Loki {
                encoding: WireEncoding::Protobuf,
                ..
            }
        ) {
            // Loki's protobuf push is always snappy-compressed (and nothing else).
            http.compression = Compression::Snappy;
        }
        if kind_name == "loki"
            && let Some(tenant) = s.loki_tenant.as_ref().or(args.loki_tenant.as_ref())
        {
            let (n, v) = header(origin, "loki-tenant", "x-scope-orgid", tenant)?;
            http.headers.insert(n, v);
        }
        (kind_name, SinkKind::Http(http))
    } else {
        return Err(origin.error(
            flag,
            format!(
                "unknown sink `{url}`: use stdout, file:///ABS/PATH, http://…, https://…, loki:URL, \
                 elasticsearch:URL, opensearch:URL or otlp:URL"
            ),
        ));
    };
    if format == Format::JsonArray && !matches!(kind, SinkKind::Http(_)) {
        return Err(origin.error("format", "json-array is for HTTP sinks; use ndjson or raw"));
    }
    let n = counts.entry(kind_name).or_default();
    *n += 1;
    let name = name.unwrap_or_else(|| {
        if *n == 1 {
            kind_name.to_owned()
        } else {
            format!("{kind_name}-{n}")
        }
    });
    let max_lines = s.batch_max_lines.unwrap_or(args.batch_max_lines);
    if max_lines == 0 {
        return Err(origin.error("batch-max-lines", "must be at least 1"));
    }
    let max_bytes = size(
        origin,
        "batch-max-bytes",
        s.batch_max_bytes.as_ref(),
        args.batch_max_bytes,
    )?;
    let max_bytes = size_within(
        origin,
        "batch-max-bytes",
        max_bytes,
        1024..=256 << 20,
        "1KiB and 256MiB",
    )?;
    let timeout = duration(origin, "batch-timeout", s.batch_timeout.as_deref(), args.batch_timeout)?;
    let on_reject = s.on_reject.unwrap_or(args.on_reject);
    let dead_letter_max_size = size(
        origin,
        "dead-letter-max-size",
        s.dead_letter_max_size.as_ref(),
        args.dead_letter_max_size,
    )?;
    if dead_letter_max_size < 64 * 1024 {
        return Err(origin.error("dead-letter-max-size", "must be at least 64KiB"));
    }
    let dead_letter = match (on_reject, &kind) {
        (OnReject::DeadLetter, SinkKind::Http(_)) => match state_dir {
            Some(dir) => Some(dir.join("dead-letter").join(format!("{name}.ndjson"))),
            None => {
                return Err(origin.error(
                    "on-reject",
                    "dead-letter needs --state-dir for the dead-letter file; give one, or --on-reject drop|stop",
                ));
            }
        },
        _ => None,
    };
    if let Some(file) = &dead_letter
        && let Some(dir) = file.parent()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| ConfigError::new(format!("--state-dir: cannot create {}: {e}", dir.display())))?;
    }
    Ok(SinkConfig {
        name,
        kind,
        format,
        batch: BatchLimits {
            max_lines,
            max_bytes,
            timeout,
        },
        retry: RetryPolicy {
            max: s.retry_max.or(args.retry_max),
            max_delay: duration(
                origin,
                "retry-max-delay",
                s.retry_max_delay.as_deref(),
                args.retry_max_delay,
            )?,
        },
        on_reject,
        dead_letter,
        dead_letter_max_size,
    })
}

/// `loki:URL`, `elasticsearch:URL`, `opensearch:URL`, `otlp:URL`: the sink's
/// kind and its base URL.
fn platform_url(url: &str) -> Option<(&'static str, &str)> {
    for kind in ["loki", "elasticsearch", "opensearch", "otlp"] {
        if let Some(base) = url.strip_prefix(kind).and_then(|rest| rest.strip_prefix(':')) {
            return Some((kind, base.trim()));
        }
    }
    None
}

/// An HTTP(S) sink POSTing to `target` (`url` as the user wrote it, for messages).
#[allow(clippy::too_many_arguments)]
fn http_sink(
    args: &Args,
    s: &SinkSection,
    origin: &Origin<'_>,
    flag: &str,
    url: &str,
    target: &str,
    api: Api,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Box<HttpConfig>, ConfigError> {
    let uri: Uri = target
        .parse()
        .map_err(|e| origin.error(flag, format!("`{url}` is not a URL: {e}")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(origin.error(flag, format!("`{url}` has no host")));
    }
    let tls = if uri.scheme_str() == Some("https") {
        let options = s.tls(&args.tls.options);
        let tls_error = |e: podkit_tls::TlsError| {
            let option = e.option().map_or("tls-ca-file", |o| o.long());
            origin.error(option, e)
        };
        let loaded = options.load().map_err(tls_error)?;
        let client = loaded.client_config(&[b"http/1.1"]).map_err(tls_error)?;
        let server_name = loaded.server_name(uri.host().unwrap_or_default()).map_err(tls_error)?;
        Some(HttpsConfig { client, server_name })
    } else {
        None
    };
    Ok(Box::new(HttpConfig {
        tls,
        uri,
        api,
        headers: headers(args, s, origin, env)?,
        compression: s.compression.unwrap_or(args.compression),
        request_timeout: duration(
            origin,
            "request-timeout",
            s.request_timeout.as_deref(),
            args.request_timeout,
        )?,
    }))
}

/// A section's size, else the flag's value.
fn size(origin: &Origin<'_>, flag: &str, value: Option<&Size>, default: u64) -> Result<u64, ConfigError> {
    match value {
        Some(size) => size.bytes(origin, flag),
        None => Ok(default),
    }
}

/// `bytes` as a `usize` within `range` (`between` in words), else an error
/// naming the flag or key.
fn size_within(
    origin: &Origin<'_>,
    flag: &str,
    bytes: u64,
    range: std::ops::RangeInclusive<usize>,
    between: &str,
) -> Result<usize, ConfigError> {
    usize::try_from(bytes)
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| origin.error(flag, format!("must be between {between}")))
}

fn duration(origin: &Origin<'_>, flag: &str, text: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match text {
        Some(t) => parse_duration(t).map_err(|e| origin.error(flag, e)),
        None => Ok(default),
    }
}

fn header(origin: &Origin<'_>, flag: &str, name: &str, value: &str) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let n = HeaderName::try_from(name.trim())
        .map_err(|_| origin.error(flag, format!("`{}` is not a header name", name.trim())))?;
    let v = HeaderValue::try_from(value.trim())
        .map_err(|_| origin.error(flag, format!("the value of {n} is not a valid header value")))?;
    Ok((n, v))
}

fn headers(
    args: &Args,
    s: &SinkSection,
    origin: &Origin<'_>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<HeaderMap, ConfigError> {
    let mut map = HeaderMap::new();
    let section = matches!(origin, Origin::Section { .. });
    if section && !s.headers.is_empty() {
        for (k, v) in &s.headers {
            let (n, v) = header(origin, "headers", k, v)?;
            map.append(n, v);
        }
    } else {
        for h in &args.headers {
            let Some((k, v)) = h.split_once(':') else {
                return Err(Origin::Flags.error("header", format!("`{h}` is not 'Name: value'")));
            };
            let (n, v) = header(&Origin::Flags, "header", k, v)?;
            map.append(n, v);
        }
    }
    let from_env: Vec<(String, String)> = if section && !s.headers_from_env.is_empty() {
        s.headers_from_env.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    } else {
        let mut v = Vec::new();
        for h in &args.headers_from_env {
            let (k, var) = key_value(&Origin::Flags, "header-from-env", h)?;
            v.push((k.to_owned(), var.trim().to_owned()));
        }
        v
    };
    for (k, var) in from_env {
        let value = env(&var)
            .ok_or_else(|| origin.error("header-from-env", format!("environment variable {var} is not set")))?;
        let (n, v) = header(origin, "header-from-env", &k, &value)?;
        map.append(n, v);
    }
    let from_file: Vec<(String, PathBuf)> = if section && !s.headers_from_file.is_empty() {
        s.headers_from_file
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        let mut v = Vec::new();
        for h in &args.headers_from_file {
            let (k, path) = key_value(&Origin::Flags, "header-from-file", h)?;
            v.push((k.to_owned(), PathBuf::from(path.trim())));
        }
        v
    };
    for (k, path) in from_file {
        let value = read_secret(origin, "header-from-file", &path)?;
        let (n, v) = header(origin, "header-from-file", &k, &value)?;
        map.append(n, v);
    }
    let user = s.basic_auth_user.as_ref().or(args.basic_auth_user.as_ref());
    let password = match (&s.basic_auth_password_file, &s.basic_auth_password) {
        (Some(path), _) => Some(read_secret(origin, "basic-auth-password-file", path)?),
        (None, Some(p)) => Some(p.clone()),
        (None, None) => match (&args.basic_auth_password_file, &args.basic_auth_password) {
            (Some(path), _) => Some(read_secret(&Origin::Flags, "basic-auth-password-file", path)?),
            (None, p) => p.clone(),
        },
    };
    match (user, password) {
        (Some(user), password) => {
            use base64::Engine as _;
            let credentials = format!("{user}:{}", password.unwrap_or_default());
            let value = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            );
            let (n, v) = header(origin, "basic-auth-user", "authorization", &value)?;
            map.insert(n, v);
        }
        (None, Some(_)) => {
            return Err(origin.error("basic-auth-user", "a basic-auth password needs a user"));
        }
        (None, None) => {}
    }
    let token = match (&s.bearer_token_file, &s.bearer_token) {
        (Some(path), _) => Some(read_secret(origin, "bearer-token-file", path)?),
        (None, Some(t)) => Some(t.clone()),
        (None, None) => match (&args.bearer_token_file, &args.bearer_token) {
            (Some(path), _) => Some(read_secret(&Origin::Flags, "bearer-token-file", path)?),
            (None, t) => t.clone(),
        },
    };
    if let Some(token) = token {
        if map.contains_key(http::header::AUTHORIZATION) {
            return Err(origin.error("bearer-token-file", "choose basic auth or a bearer token, not both"));
        }
        let (n, v) = header(
            origin,
            "bearer-token-file",
            "authorization",
            &format!("Bearer {}", token.trim()),
        )?;
        map.insert(n, v);
    }
    Ok(map)
}

fn read_secret(origin: &Origin<'_>, flag: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| origin.error(flag, format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let argv = std::iter::once("log-shipper").chain(args.iter().copied());
        let args: Args = podkit_runtime::cli::parse_from(argv, "127.0.0.1:0").expect("flags parse");
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_args_with_env(args, |name| env.get(name).cloned())
    }

    fn err(args: &[&str]) -> String {
        format!("{:#}", parse(args, &[]).expect_err("should fail"))
    }

    #[test]
    fn flags_make_one_source_and_named_sinks() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let c = parse(
            &[
                "--follow",
                "/var/log/*.log",
                "--state-dir",
                state.to_str().unwrap(),
                "--sink",
                "http://a:8080/x",
                "--sink",
                "http://b/y",
                "--sink",
                "file:///tmp/out.ndjson",
                "--label",
                "pod=web",
                "--label-from-env",
                "ns=NS",
                "--basic-auth-user",
                "u",
                "--basic-auth-password",
                "p",
            ],
            &[("NS", "prod")],
        )
        .unwrap();
        assert_eq!(c.sources.len(), 1);
        assert_eq!(
            c.sources[0].labels,
            [("pod".into(), "web".into()), ("ns".into(), "prod".into())]
        );
        let names: Vec<&str> = c.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["http", "http-2", "file"]);
        let SinkKind::Http(http) = &c.sinks[0].kind else {
            panic!()
        };
        assert_eq!(http.headers["authorization"], "Basic dTpw");
        assert_eq!(
            c.sinks[0].dead_letter.as_deref(),
            Some(&*state.join("dead-letter/http.ndjson"))
        );
        assert_eq!(c.sinks[0].batch.timeout, Duration::from_millis(200));
        assert!(state.join("dead-letter").is_dir());
    }

    #[test]
    fn sections_inherit_top_level_options_and_override_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "no-checkpoint: true\nbatch-timeout: 1s\nlabel: [cluster=eu]\nsource:\n  - name: web\n    follow: /a/*.log\n    \
             parse: json\n    labels: {app: web}\n  - follow: [/b/x.log, /b/y.log]\nsink:\n  - url: stdout\n    format: raw\n  \
             - url: http://c/ingest\n    name: collector\n    batch-timeout: 50ms\n    on-reject: drop\n    \
             headers: {X-A: b}\n",
        )
        .unwrap();
        let c = parse(&["--config", file.to_str().unwrap()], &[]).unwrap();
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.sources[0].name, "web");
        assert!(matches!(c.sources[0].parse, Parse::Json));
        assert_eq!(c.sources[0].timestamp_field.as_deref(), Some("timestamp"));
        assert_eq!(
            c.sources[0].labels,
            [("cluster".into(), "eu".into()), ("app".into(), "web".into())]
        );
        assert_eq!(c.sources[1].name, "source-2");
        assert_eq!(c.sources[1].include, ["/b/x.log", "/b/y.log"]);
        assert_eq!(c.sinks[0].name, "stdout");
        assert_eq!(c.sinks[0].format, Format::Raw);
        assert_eq!(c.sinks[0].batch.timeout, Duration::from_secs(1), "inherited");
        assert_eq!(c.sinks[1].name, "collector");
        assert_eq!(c.sinks[1].batch.timeout, Duration::from_millis(50), "overridden");
        let SinkKind::Http(http) = &c.sinks[1].kind else {
            panic!()
        };
        assert_eq!(http.headers["x-a"], "b");
    }

    #[test]
    fn platform_sinks_take_a_base_url_and_their_options() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let c = parse(
            &[
                "--follow",
                "/x/*.log",
                "--state-dir",
                state.to_str().unwrap(),
                "--sink",
                "loki:http://loki:3100",
                "--sink",
                "elasticsearch:http://es:9200/",
                "--sink",
                "opensearch:http://os:9200/prefix",
                "--sink",
                "otlp:http://collector:4318",
                "--loki-tenant",
                "team-a",
                "--es-index",
                "logs-app-default",
            ],
            &[],
        )
        .unwrap();
        let names: Vec<&str> = c.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["loki", "elasticsearch", "opensearch", "otlp"]);
        let http = |i: usize| match &c.sinks[i].kind {
            SinkKind::Http(h) => h.clone(),
            _ => panic!(),
        };
        assert_eq!(http(0).uri, "http://loki:3100/loki/api/v1/push");
        assert_eq!(http(0).headers["x-scope-orgid"], "team-a");
        assert!(matches!(
            http(0).api,
            Api::Loki {
                max_streams: 100,
                encoding: WireEncoding::Json
            }
        ));
        assert_eq!(http(1).uri, "http://es:9200/_bulk");
        assert_eq!(http(2).uri, "http://os:9200/prefix/_bulk");
        assert!(matches!(
            http(2).api,
            Api::Elasticsearch {
                action: EsAction::Create,
                ..
            }
        ));
        assert_eq!(http(3).uri, "http://collector:4318/v1/logs");
        assert!(http(3).headers.get("x-scope-orgid").is_none(), "the tenant is Loki's");
        assert_eq!(
            c.sinks[3].dead_letter.as_deref(),
            Some(&*state.join("dead-letter/otlp.ndjson"))
        );
        assert_eq!(c.sinks[3].dead_letter_max_size, 100 << 20);
    }

    #[test]
    fn loki_and_otlp_sinks_take_a_protobuf_encoding() {
        let args = [
            "--follow",
            "/x/*.log",
            "--no-checkpoint",
            "--on-reject",
            "drop",
            "--sink",
            "loki:http://loki:3100",
            "--sink",
            "otlp:http://collector:4318",
            "--loki-encoding",
            "protobuf",
            "--otlp-encoding",
            "protobuf",
            "--compression",
            "gzip",
        ];
        let c = parse(&args, &[]).unwrap();
        let http = |i: usize| match &c.sinks[i].kind {
            SinkKind::Http(h) => h.clone(),
            _ => panic!(),
        };
        assert!(matches!(
            http(0).api,
            Api::Loki {
                encoding: WireEncoding::Protobuf,
                ..
            }
        ));
        assert_eq!(
            http(0).compression,
            Compression::Snappy,
            "snappy, not the gzip of the others"
        );
        assert_eq!(http(0).api.content_type(), Some("application/x-protobuf"));
        assert!(matches!(
            http(1).api,
            Api::Otlp {
                encoding: WireEncoding::Protobuf
            }
        ));
        assert_eq!(http(1).compression, Compression::Gzip);
        assert_eq!(http(1).api.content_type(), Some("application/x-protobuf"));
        let c = parse(&args[..9], &[]).unwrap();
        let SinkKind::Http(h) = &c.sinks[0].kind else { panic!() };
        assert_eq!(h.api.content_type(), Some("application/json"), "JSON by default");
        assert_eq!(h.compression, Compression::None);
    }

    #[test]
    fn mistakes_name_the_flag_or_key() {
        let base = ["--follow", "/x/*.log", "--no-checkpoint"];
        let with = |extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            err(&v)
        };
        assert!(with(&["--sink", "ftp://x"]).starts_with("--sink: unknown sink `ftp://x`"));
        assert!(with(&["--sink", "http://x", "--header", "nocolon"]).starts_with("--header:"));
        assert!(
            with(&["--sink", "http://x"]).starts_with("--on-reject:"),
            "dead letters need a state dir"
        );
        assert!(with(&["--sink", "stdout", "--label", "file=x"]).starts_with("--label: `file`"));
        assert!(with(&["--sink", "stdout", "--timestamp-field", "t"]).starts_with("--timestamp-field:"));
        assert!(with(&["--sink", "stdout", "--batch-max-bytes", "10"]).starts_with("--batch-max-bytes:"));
        assert!(
            with(&[
                "--sink",
                "http://x",
                "--on-reject",
                "drop",
                "--bearer-token",
                "t",
                "--basic-auth-user",
                "u"
            ])
            .contains("not both")
        );
        assert!(err(&["--sink", "stdout", "--no-checkpoint"]).starts_with("nothing to follow"));
        assert!(with(&["--sink", "loki:loki:3100"]).starts_with("--sink: `loki:loki:3100` is not loki:http://"));
        assert!(
            with(&[
                "--sink",
                "elasticsearch:http://es",
                "--on-reject",
                "drop",
                "--es-index",
                "Logs"
            ])
            .starts_with("--es-index:")
        );
        assert!(
            with(&[
                "--sink",
                "loki:http://l",
                "--on-reject",
                "drop",
                "--loki-max-streams",
                "0"
            ])
            .starts_with("--loki-max-streams:")
        );
        assert!(
            with(&[
                "--sink",
                "otlp:http://c",
                "--on-reject",
                "drop",
                "--dead-letter-max-size",
                "1KiB"
            ])
            .starts_with("--dead-letter-max-size:")
        );
        let dir = tempfile::tempdir().unwrap();
        for (body, needle) in [
            ("[[sink]]\nurl = \"stdout\"\nsize = 1\n", "unknown field `size`"),
            ("[[sinks]]\nurl = \"stdout\"\n", "unknown section `sinks`"),
            (
                "[[sink]]\nurl = \"otlp:http://c:4318\"\nes_indx = \"x\"\n",
                "unknown field `es_indx`",
            ),
            (
                "[[sink]]\nurl = \"loki:http://l:3100\"\nformat = \"raw\"\n",
                "loki sinks have their own wire format",
            ),
            (
                "[[sink]]\nurl = \"loki:http://l:3100\"\nloki_encoding = \"protobuf\"\ncompression = \"gzip\"\n",
                "gzip does not apply",
            ),
            (
                "[[sink]]\nurl = \"otlp:http://c:4318\"\notlp_encoding = \"snappy\"\n",
                "unknown variant `snappy`",
            ),
            ("[[sink]]\nname = \"x\"\n", "needs `url`"),
            (
                "[[sink]]\nname = \"x\"\nurl = \"stdout\"\n[[sink]]\nname = \"x\"\nurl = \"stdout\"\n",
                "two sinks are named `x`",
            ),
            ("[[source]]\nname = \"a\"\n", "needs `follow`"),
            (
                "[[sink]]\nurl = \"stdout\"\nbatch_timeout = \"soon\"\n",
                "`batch_timeout` in [[sink]] #1",
            ),
        ] {
            let file = dir.path().join("c.toml");
            std::fs::write(&file, body).unwrap();
            let e = err(&["--config", file.to_str().unwrap(), "--follow", "/x", "--no-checkpoint"]);
            assert!(e.contains(needle) && e.contains("c.toml"), "{body:?}: {e}");
        }
    }
}
