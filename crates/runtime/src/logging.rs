//! Tracing setup: the binary's own logs go to stderr (stdout is data for
//! `tail-rewrite` and for stdout sinks), as text for humans or as one flat
//! JSON object per line with `timestamp`, `level`, `message`, `target` and the
//! event's fields.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global tracing subscriber.
///
/// `level` is a level (`info`) or filter directives (`info,podkit_tailer=debug`);
/// when it is `None`, `RUST_LOG` is used, and `info` when that is unset too.
/// Fails with a message naming the bad directive.
pub fn init(level: Option<&str>, format: LogFormat) -> Result<(), String> {
    let filter = filter(level, std::env::var("RUST_LOG").ok().as_deref())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    // A subscriber already installed (tests calling init twice) is fine.
    let _ = result;
    Ok(())
}

/// [`init`] with a plain per-target filter (`debug`, `info,wait_for=debug`)
/// instead of [`EnvFilter`]: no span or field directives, and no regex engine
/// linked (about 0.4 MB of a static binary). For size-sensitive binaries
/// (`wait-for`); the output is the same.
pub fn init_targets(level: Option<&str>, format: LogFormat) -> Result<(), String> {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let rust_log = std::env::var("RUST_LOG").ok();
    let directives = level
        .or(rust_log.as_deref())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("info");
    let targets: Targets = directives
        .parse()
        .map_err(|e| format!("invalid value `{directives}` for --log-level/PODKIT_LOG_LEVEL: {e}"))?;
    // The builder's own level filter must let everything through to `targets`.
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.with_ansi(false).finish().with(targets).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .finish()
            .with(targets)
            .try_init(),
    };
    // A subscriber already installed (tests calling init twice) is fine.
    let _ = result;
    Ok(())
}

/// Builds the filter from the flag, else from `RUST_LOG`, else `info`.
fn filter(level: Option<&str>, rust_log: Option<&str>) -> Result<EnvFilter, String> {
    let directives = level.or(rust_log).filter(|s| !s.trim().is_empty()).unwrap_or("info");
    EnvFilter::builder()
        .parse(directives)
        .map_err(|e| format!("invalid value `{directives}` for --log-level/PODKIT_LOG_LEVEL: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_rust_log_and_info_is_the_default() {
        assert_eq!(filter(Some("debug"), Some("trace")).unwrap().to_string(), "debug");
        assert_eq!(
            filter(None, Some("warn,podkit=trace")).unwrap().to_string(),
            "podkit=trace,warn"
        );
        assert_eq!(filter(None, None).unwrap().to_string(), "info");
    }

    #[test]
    fn target_directives_are_checked_too() {
        let err = init_targets(Some("info,podkit=loud"), LogFormat::Text).unwrap_err();
        assert!(err.contains("--log-level"), "{err}");
    }

    #[test]
    fn bad_directives_are_reported() {
        let err = filter(Some("info,podkit=loud"), None).unwrap_err();
        assert!(err.contains("--log-level"), "{err}");
    }
}
