//! The command line: every flag with its `LOG_SHIPPER_` env twin, exactly as
//! typed. [`Config`](crate::Config) validates them (and the config file's
//! `[[source]]`/`[[sink]]` sections) into something [`run`](crate::run) can use.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use podkit_runtime::CommonArgs;
use podkit_runtime::cli::{parse_duration, parse_size};
use serde::Deserialize;

/// Command-line arguments; every flag has a `LOG_SHIPPER_` env twin
/// (repeatable flags: one value per line).
#[derive(Debug, Parser)]
#[command(
    name = "log-shipper",
    version = podkit_runtime::VERSION,
    about = "Follows an app's log files through rotation and ships every line to stdout, files or HTTP \
             collectors, checkpointing a file's offset only once every sink accepted its lines.",
    after_help = "Examples:\n  \
        log-shipper --follow '/var/log/app/*.log' --state-dir /var/lib/log-shipper \\\n      \
          --sink http://collector:8080/ingest --label-from-env pod=POD_NAME\n  \
        log-shipper --follow /var/log/app.log --parse json --no-checkpoint --sink stdout\n  \
        log-shipper --config /etc/log-shipper/config.toml   # several [[source]] and [[sink]] sections\n\n\
        Sinks: stdout, file:///ABS/PATH, http://HOST[:PORT]/PATH (https:// with the TLS flags), \
        loki:http://loki:3100, elasticsearch:http://es:9200 (or opensearch:…), otlp:http://collector:4318.\n\
        Records (NDJSON): {\"timestamp\":\"…\",\"file\":\"…\",LABELS…,\"message\":\"…\"}; with --parse, the \
        parsed fields replace \"message\"."
)]
pub struct Args {
    // === sources ===
    /// A file or glob to follow through rotation (repeatable), e.g.
    /// '/var/log/app/*.log'; a file that does not exist yet is picked up when it appears.
    #[arg(
        long,
        env = "LOG_SHIPPER_FOLLOW",
        value_name = "PATH|GLOB",
        value_delimiter = '\n',
        help_heading = "Sources"
    )]
    pub follow: Vec<String>,

    /// Never follow files matching this glob (repeatable), e.g. '*.gz'; a
    /// pattern without `/` matches the file name.
    #[arg(
        long,
        env = "LOG_SHIPPER_FOLLOW_EXCLUDE",
        value_name = "GLOB",
        value_delimiter = '\n',
        help_heading = "Sources"
    )]
    pub follow_exclude: Vec<String>,

    /// Where to start in files already there at the very first start
    /// (a checkpoint always wins; files that appear later are read from
    /// their beginning).
    #[arg(long, env = "LOG_SHIPPER_START_AT", value_enum, default_value_t = StartAt::Beginning, help_heading = "Sources")]
    pub start_at: StartAt,

    /// Directory for checkpoints and dead letters (a writable volume that
    /// outlives the container). Required unless --no-checkpoint.
    #[arg(long, env = "LOG_SHIPPER_STATE_DIR", value_name = "DIR", help_heading = "Sources")]
    pub state_dir: Option<PathBuf>,

    /// Run without checkpoints: a restart reads the files again from
    /// --start-at.
    #[arg(long, env = "LOG_SHIPPER_NO_CHECKPOINT", help_heading = "Sources")]
    pub no_checkpoint: bool,

    /// Longest line shipped in one record; longer lines are split (or
    /// truncated with --long-lines truncate) and counted.
    #[arg(long, env = "LOG_SHIPPER_MAX_LINE_BYTES", value_name = "SIZE", default_value = "256KiB", value_parser = parse_size, help_heading = "Sources")]
    pub max_line_bytes: u64,

    /// What to do with lines longer than --max-line-bytes.
    #[arg(long, env = "LOG_SHIPPER_LONG_LINES", value_enum, default_value_t = LongLines::Split, help_heading = "Sources")]
    pub long_lines: LongLines,

    // === multiline and container logs ===
    /// Join stack traces into one record with a built-in rule: `java`,
    /// `python`, `go` or `node`.
    #[arg(
        long,
        env = "LOG_SHIPPER_MULTILINE",
        value_name = "java|python|go|node",
        help_heading = "Multiline"
    )]
    pub multiline: Option<String>,

    /// Join lines into records: a line matching this regex starts a record,
    /// any other line continues the one before it, e.g. '^\d{4}-\d\d-\d\d '.
    #[arg(
        long,
        env = "LOG_SHIPPER_MULTILINE_START",
        value_name = "REGEX",
        help_heading = "Multiline"
    )]
    pub multiline_start: Option<String>,

    /// Most lines in one record; a longer one is split (counted, nothing lost).
    #[arg(
        long,
        env = "LOG_SHIPPER_MULTILINE_MAX_LINES",
        value_name = "N",
        default_value_t = 500,
        help_heading = "Multiline"
    )]
    pub multiline_max_lines: usize,

    /// Most bytes in one record; a larger one is split (counted, nothing lost).
    #[arg(long, env = "LOG_SHIPPER_MULTILINE_MAX_BYTES", value_name = "SIZE", default_value = "256KiB", value_parser = parse_size, help_heading = "Multiline")]
    pub multiline_max_bytes: u64,

    /// How long a file must be quiet (read to its end, nothing new) before
    /// its last record (or partial container line) is shipped without
    /// waiting for the next one.
    #[arg(long, env = "LOG_SHIPPER_MULTILINE_FLUSH_TIMEOUT", value_name = "DURATION", default_value = "1s", value_parser = parse_duration, help_heading = "Multiline")]
    pub multiline_flush_timeout: Duration,

    /// The files are container logs: `cri` (containerd, CRI-O), `docker`
    /// (json-file) or `auto` (per line); partial lines are joined, and the
    /// runtime's time and stream become the record's time and `stream` label.
    #[arg(long, env = "LOG_SHIPPER_CONTAINER_FORMAT", value_enum, default_value_t = crate::cri::ContainerFormat::None, help_heading = "Multiline")]
    pub container_format: crate::cri::ContainerFormat,

    // === Kubernetes node mode ===
    /// Node mode (a DaemonSet): follow every container's log files under
    /// --kubernetes-log-root (`ROOT/NAMESPACE_POD_UID/CONTAINER/*.log`),
    /// CRI or docker format, with namespace, pod, pod_uid, container and
    /// stream labels from the path.
    #[arg(long, env = "LOG_SHIPPER_KUBERNETES_NODE", help_heading = "Kubernetes")]
    pub kubernetes_node: bool,

    /// Where the kubelet keeps pod logs (node mode).
    #[arg(long, env = "LOG_SHIPPER_KUBERNETES_LOG_ROOT", value_name = "DIR", default_value = crate::kubernetes::DEFAULT_ROOT, help_heading = "Kubernetes")]
    pub kubernetes_log_root: PathBuf,

    // === parsing ===
    /// How to parse each line: `none`, `json` (an object's keys become the
    /// record's; other lines are kept whole under "message" and counted), or
    /// `regex:PATTERN` with named captures, e.g. `regex:^(?P<level>\w+) (?P<msg>.*)$`.
    #[arg(
        long,
        env = "LOG_SHIPPER_PARSE",
        value_name = "none|json|regex:PATTERN",
        default_value = "none",
        help_heading = "Parsing"
    )]
    pub parse: String,

    /// The parsed field holding the event's time [default: `timestamp`];
    /// without one (or when it does not parse) a record's time is when it was read.
    #[arg(
        long,
        env = "LOG_SHIPPER_TIMESTAMP_FIELD",
        value_name = "NAME",
        help_heading = "Parsing"
    )]
    pub timestamp_field: Option<String>,

    /// strftime format of the timestamp field, e.g. '%d/%b/%Y:%H:%M:%S %z';
    /// by default RFC 3339 and common formats are tried (no offset: UTC).
    #[arg(
        long,
        env = "LOG_SHIPPER_TIMESTAMP_FORMAT",
        value_name = "STRFTIME",
        help_heading = "Parsing"
    )]
    pub timestamp_format: Option<String>,

    // === labels ===
    /// A label added to every record, KEY=VALUE (repeatable).
    #[arg(
        long = "label",
        env = "LOG_SHIPPER_LABEL",
        value_name = "KEY=VALUE",
        value_delimiter = '\n',
        help_heading = "Labels"
    )]
    pub labels: Vec<String>,

    /// A label whose value is an environment variable, KEY=VAR (repeatable),
    /// e.g. pod=POD_NAME for the downward API; a variable that is not set is
    /// an error (exit 64).
    #[arg(
        long = "label-from-env",
        env = "LOG_SHIPPER_LABEL_FROM_ENV",
        value_name = "KEY=VAR",
        value_delimiter = '\n',
        help_heading = "Labels"
    )]
    pub labels_from_env: Vec<String>,

    // === sinks ===
    /// Where to ship (repeatable): `stdout`, `file:///ABS/PATH`, `http://…`,
    /// `https://…`, or a platform and its base URL: `loki:http://loki:3100`,
    /// `elasticsearch:http://es:9200` (`opensearch:` too), `otlp:http://collector:4318`. The options below apply to these sinks; give several
    /// differently configured sinks as `[[sink]]` sections of --config.
    #[arg(
        long = "sink",
        env = "LOG_SHIPPER_SINK",
        value_name = "URL",
        value_delimiter = '\n',
        help_heading = "Sinks"
    )]
    pub sinks: Vec<String>,

    /// Record encoding: one JSON object per line, the line as read, or (HTTP
    /// only) a JSON array per request.
    #[arg(long, env = "LOG_SHIPPER_FORMAT", value_enum, default_value_t = Format::Ndjson, help_heading = "Sinks")]
    pub format: Format,

    /// An HTTP request header, 'Name: value' (repeatable).
    #[arg(
        long = "header",
        env = "LOG_SHIPPER_HEADER",
        value_name = "NAME: VALUE",
        value_delimiter = '\n',
        help_heading = "Sinks"
    )]
    pub headers: Vec<String>,

    /// An HTTP header whose value is an environment variable, 'Name=VAR' (repeatable).
    #[arg(
        long = "header-from-env",
        env = "LOG_SHIPPER_HEADER_FROM_ENV",
        value_name = "NAME=VAR",
        value_delimiter = '\n',
        help_heading = "Sinks"
    )]
    pub headers_from_env: Vec<String>,

    /// An HTTP header whose value is a file's content (trimmed), 'Name=PATH'
    /// (repeatable), e.g. a mounted secret.
    #[arg(
        long = "header-from-file",
        env = "LOG_SHIPPER_HEADER_FROM_FILE",
        value_name = "NAME=PATH",
        value_delimiter = '\n',
        help_heading = "Sinks"
    )]
    pub headers_from_file: Vec<String>,

    /// User name for HTTP basic authentication.
    #[arg(
        long,
        env = "LOG_SHIPPER_BASIC_AUTH_USER",
        value_name = "USER",
        help_heading = "Sinks"
    )]
    pub basic_auth_user: Option<String>,

    /// File holding the basic-auth password (e.g. a mounted secret).
    #[arg(
        long,
        env = "LOG_SHIPPER_BASIC_AUTH_PASSWORD_FILE",
        value_name = "PATH",
        conflicts_with = "basic_auth_password",
        help_heading = "Sinks"
    )]
    pub basic_auth_password_file: Option<PathBuf>,

    /// The basic-auth password itself; prefer its env twin or the file, which
    /// `ps` does not show.
    #[arg(
        long,
        env = "LOG_SHIPPER_BASIC_AUTH_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true,
        help_heading = "Sinks"
    )]
    pub basic_auth_password: Option<String>,

    /// File holding a bearer token, sent as `Authorization: Bearer …` (read
    /// at start).
    #[arg(
        long,
        env = "LOG_SHIPPER_BEARER_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with = "bearer_token",
        help_heading = "Sinks"
    )]
    pub bearer_token_file: Option<PathBuf>,

    /// The bearer token itself; prefer its env twin or the file.
    #[arg(
        long,
        env = "LOG_SHIPPER_BEARER_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        help_heading = "Sinks"
    )]
    pub bearer_token: Option<String>,

    /// Compress HTTP request bodies.
    #[arg(long, env = "LOG_SHIPPER_COMPRESSION", value_enum, default_value_t = Compression::None, help_heading = "Sinks")]
    pub compression: Compression,

    /// Most records in one request (or write).
    #[arg(
        long,
        env = "LOG_SHIPPER_BATCH_MAX_LINES",
        value_name = "N",
        default_value_t = 10_000,
        help_heading = "Sinks"
    )]
    pub batch_max_lines: usize,

    /// Most bytes (before compression) in one request (or write).
    #[arg(long, env = "LOG_SHIPPER_BATCH_MAX_BYTES", value_name = "SIZE", default_value = "1MiB", value_parser = parse_size, help_heading = "Sinks")]
    pub batch_max_bytes: u64,

    /// Longest time a line waits for its batch to fill before it is sent
    /// (stdout and file sinks also write as soon as the input is idle).
    #[arg(long, env = "LOG_SHIPPER_BATCH_TIMEOUT", value_name = "DURATION", default_value = "200ms", value_parser = parse_duration, help_heading = "Sinks")]
    pub batch_timeout: Duration,

    /// Retries of a failed request (connection errors, timeouts, 408, 429,
    /// 5xx) before the batch is handled by --on-reject [default: retry forever].
    #[arg(long, env = "LOG_SHIPPER_RETRY_MAX", value_name = "N", help_heading = "Sinks")]
    pub retry_max: Option<u32>,

    /// Longest wait between retries (jittered exponential backoff from 50ms;
    /// a Retry-After answer wins).
    #[arg(long, env = "LOG_SHIPPER_RETRY_MAX_DELAY", value_name = "DURATION", default_value = "1s", value_parser = parse_duration, help_heading = "Sinks")]
    pub retry_max_delay: Duration,

    /// How long a request may take (connecting included) before it is
    /// abandoned and retried.
    #[arg(long, env = "LOG_SHIPPER_REQUEST_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration, help_heading = "Sinks")]
    pub request_timeout: Duration,

    /// What to do with a batch the sink rejects as invalid (4xx other than
    /// 408/429): append it to `STATE_DIR/dead-letter/SINK.ndjson`, drop
    /// it, or stop the shipper (exit 1). All are counted and logged.
    #[arg(long, env = "LOG_SHIPPER_ON_REJECT", value_enum, default_value_t = OnReject::DeadLetter, help_heading = "Sinks")]
    pub on_reject: OnReject,

    /// Rotate a file sink before it would exceed this size (at a line boundary).
    #[arg(long, env = "LOG_SHIPPER_FILE_MAX_SIZE", value_name = "SIZE", value_parser = parse_size, help_heading = "Sinks")]
    pub file_max_size: Option<u64>,

    /// Rotated files a file sink keeps (PATH.1 … PATH.N).
    #[arg(
        long,
        env = "LOG_SHIPPER_FILE_KEEP",
        value_name = "N",
        default_value_t = 3,
        help_heading = "Sinks"
    )]
    pub file_keep: usize,

    /// Most bytes a sink's dead-letter file grows to: before an entry would
    /// take it past this size it is renamed to `FILE.1` (replacing the older
    /// one, whose bytes are counted as discarded) and a new file is started.
    #[arg(long, env = "LOG_SHIPPER_DEAD_LETTER_MAX_SIZE", value_name = "SIZE", default_value = "100MiB", value_parser = parse_size, help_heading = "Sinks")]
    pub dead_letter_max_size: u64,

    // === platform sinks ===
    /// Loki tenant, sent as `X-Scope-OrgID` (loki: sinks).
    #[arg(
        long,
        env = "LOG_SHIPPER_LOKI_TENANT",
        value_name = "TENANT",
        help_heading = "Platform sinks"
    )]
    pub loki_tenant: Option<String>,

    /// Most streams (label sets) in one Loki push; a batch that would hold
    /// more is sent and the next one started.
    #[arg(
        long,
        env = "LOG_SHIPPER_LOKI_MAX_STREAMS",
        value_name = "N",
        default_value_t = 100,
        help_heading = "Platform sinks"
    )]
    pub loki_max_streams: usize,

    /// How Loki pushes are encoded: `json`, or `protobuf` (Loki's
    /// `logproto.PushRequest`, snappy-compressed, as Promtail and Alloy
    /// send it; --compression does not apply to it).
    #[arg(long, env = "LOG_SHIPPER_LOKI_ENCODING", value_enum, default_value_t = WireEncoding::Json, help_heading = "Platform sinks")]
    pub loki_encoding: WireEncoding,

    /// How OTLP/HTTP requests are encoded: `json`, or `protobuf` (the
    /// binary `ExportLogsServiceRequest`; --compression gzip still applies).
    #[arg(long, env = "LOG_SHIPPER_OTLP_ENCODING", value_enum, default_value_t = WireEncoding::Json, help_heading = "Platform sinks")]
    pub otlp_encoding: WireEncoding,

    /// Elasticsearch/OpenSearch index (or data stream) name; strftime
    /// patterns (`%Y.%m.%d`) take the record's time, in UTC.
    #[arg(
        long,
        env = "LOG_SHIPPER_ES_INDEX",
        value_name = "NAME",
        default_value = "logs-podkit-%Y.%m.%d",
        help_heading = "Platform sinks"
    )]
    pub es_index: String,

    /// The `_bulk` action: `create` (works for indices and data streams) or
    /// `index`.
    #[arg(long, env = "LOG_SHIPPER_ES_ACTION", value_enum, default_value_t = EsAction::Create, help_heading = "Platform sinks")]
    pub es_action: EsAction,

    /// TLS of https sinks: trust, client certificate, server name.
    #[command(flatten)]
    pub tls: podkit_tls::TlsArgs<ShipperTls>,

    /// Serve mode: the files of a directory over HTTP (in place of nginx).
    #[command(flatten)]
    pub serve: crate::serve::ServeArgs,

    /// A TOML or YAML file: any long flag as a key (lists for repeatable
    /// flags), plus `[[source]]` and `[[sink]]` sections for several sources and
    /// differently configured sinks. Flags and environment win over its keys.
    #[arg(long, env = "LOG_SHIPPER_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Flags shared by every podkit binary.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The TLS flags' env twins: `LOG_SHIPPER_TLS_CA_FILE` and so on, with
/// `--tls-server-name` (one name for the sinks' certificates).
#[derive(Debug)]
pub struct ShipperTls;

impl podkit_tls::TlsFlags for ShipperTls {
    const ENV_PREFIX: &'static str = "LOG_SHIPPER_";
    const HELP_HEADING: &'static str = "TLS (https sinks)";
    const SERVER_NAME: bool = true;
}

impl podkit_runtime::cli::Cli for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// Where to start in files without a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartAt {
    /// From the first byte.
    #[default]
    Beginning,
    /// After what the files hold at the very first start.
    End,
}

/// What to do with a line longer than the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LongLines {
    /// Ship it in pieces of the maximum size.
    #[default]
    Split,
    /// Ship the first piece, drop the rest.
    Truncate,
}

/// How records are encoded for a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Ndjson,
    /// The line as read, bytes untouched.
    Raw,
    /// One JSON array of records per request (HTTP only).
    JsonArray,
}

/// HTTP body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// Send bodies as they are.
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
    /// Snappy block compression, as Loki's protobuf push is sent (set by
    /// `--loki-encoding protobuf`, not selectable).
    #[value(skip)]
    #[serde(skip)]
    Snappy,
}

/// The wire encoding of a Loki or OTLP sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireEncoding {
    /// JSON (`Content-Type: application/json`).
    #[default]
    Json,
    /// Protocol Buffers (`Content-Type: application/x-protobuf`).
    Protobuf,
}

/// What happens to a batch a sink rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnReject {
    /// Append it to the sink's dead-letter file in the state directory.
    #[default]
    DeadLetter,
    /// Drop it.
    Drop,
    /// Stop the shipper (exit 1) without acknowledging it.
    Stop,
}

/// The `_bulk` action of Elasticsearch/OpenSearch sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EsAction {
    /// `create`: the only action data streams accept.
    #[default]
    Create,
    /// `index`.
    Index,
}
