//! One Prometheus registry per process, served at `/metrics`.
//!
//! Components register their metrics at start-up through [`Metrics::register`].
//! The registry always holds `podkit_build_info{binary,version,revision}` and
//! the standard `process_*` metrics, read from `/proc/self` on every scrape
//! (prometheus-client has no process collector).

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Metric, Registry, Unit};

/// The content type of the OpenMetrics text format that `/metrics` serves.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A shared handle on the process's registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
}

impl Metrics {
    /// A registry holding `podkit_build_info` for `binary` and the process
    /// metrics.
    pub fn new(binary: &str) -> Self {
        let mut registry = Registry::default();
        let build_info = Family::<Vec<(String, String)>, Gauge>::default();
        build_info
            .get_or_create(&vec![
                ("binary".to_owned(), binary.to_owned()),
                ("version".to_owned(), crate::SEMVER.to_owned()),
                ("revision".to_owned(), crate::REVISION.to_owned()),
            ])
            .set(1);
        registry.register("podkit_build_info", "Build of this podkit binary; always 1", build_info);
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry: Arc::new(Mutex::new(registry)),
        }
    }

    /// Registers a metric. `name` follows `podkit_<binary>_<what>_<unit>`;
    /// counters get their `_total` suffix from the encoder.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.lock().register(name, help, metric);
    }

    /// Registers a metric with a unit, which the encoder appends to the name.
    pub fn register_with_unit(&self, name: &str, help: &str, unit: Unit, metric: impl Metric) {
        self.lock().register_with_unit(name, help, unit, metric);
    }

    /// Registers a collector that produces metrics at scrape time.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.lock().register_collector(collector);
    }

    /// Encodes every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.lock());
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads the standard `process_*` metrics from `/proc/self` on each scrape.
#[derive(Debug)]
struct ProcessCollector;

/// A snapshot of `/proc/self`.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors.
    pub max_fds: u64,
    /// Threads.
    pub threads: u64,
    /// Start time since the Unix epoch, in seconds.
    pub start_time_seconds: f64,
}

/// Clock ticks per second in `/proc` (USER_HZ), fixed at 100 on Linux.
const USER_HZ: f64 = 100.0;

impl ProcessStats {
    /// Reads the current process's statistics; fields that cannot be read
    /// stay 0.
    pub fn read() -> Self {
        let mut stats = Self::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name, which is in parentheses and may
            // contain spaces: field 3 (state) is index 0 here.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                stats.cpu_seconds = (field(14) + field(15)) as f64 / USER_HZ;
                stats.threads = field(20);
                stats.virtual_bytes = field(23);
                let boot_time = std::fs::read_to_string("/proc/stat")
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<u64>().ok()))
                    })
                    .unwrap_or(0);
                stats.start_time_seconds = boot_time as f64 + field(22) as f64 / USER_HZ;
            }
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmRSS:")) {
            let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            stats.resident_bytes = kb * 1024;
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of the entries.
            stats.open_fds = dir.count().saturating_sub(1) as u64;
        }
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        if let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) {
            stats.max_fds = line.split_whitespace().nth(3).and_then(|v| v.parse().ok()).unwrap_or(0);
        }
        stats
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        let cpu = ConstCounter::new(stats.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, Option<&Unit>, u64); 5] = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                stats.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size",
                Some(&Unit::Bytes),
                stats.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                None,
                stats.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                stats.max_fds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                None,
                stats.threads,
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)?;
        }
        let start = ConstGauge::new(stats.start_time_seconds);
        start.encode(encoder.encode_descriptor(
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Some(&Unit::Seconds),
            start.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn registry_holds_build_info_process_metrics_and_registered_ones() {
        let metrics = Metrics::new("example");
        let lines: Counter = Counter::default();
        metrics.register("podkit_example_lines", "Lines handled", lines.clone());
        lines.inc_by(3);
        let text = metrics.encode();
        assert!(text.contains(&format!(
            "podkit_build_info{{binary=\"example\",version=\"{}\",revision=\"{}\"}} 1",
            crate::SEMVER,
            crate::REVISION
        )));
        assert!(text.contains("podkit_example_lines_total 3"), "{text}");
        assert!(text.contains("# TYPE process_cpu_seconds counter"), "{text}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn process_stats_are_plausible() {
        let stats = ProcessStats::read();
        assert!(stats.resident_bytes > 1 << 20, "{stats:?}");
        assert!(stats.open_fds >= 3, "{stats:?}");
        assert!(stats.threads >= 1, "{stats:?}");
        assert!(stats.max_fds >= stats.open_fds, "{stats:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(stats.start_time_seconds > now - 86_400.0 * 365.0 && stats.start_time_seconds <= now + 1.0);
    }
}
