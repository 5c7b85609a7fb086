//! The ambassador's metrics (`podkit_ambassador_*`), registered once at
//! start-up, and per-listener handles so the hot path touches only atomics.

use std::sync::{Arc, OnceLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

type Labels = Vec<(String, String)>;

fn new_histogram() -> Histogram {
    // 0.5 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The labels of one series: whose it is (`listener` or `upstream` and its
/// name), then `extra` when given.
fn labels(owner: &str, name: &str, extra: Option<(&str, &str)>) -> Labels {
    let mut labels = vec![(owner.to_owned(), name.to_owned())];
    if let Some((k, v)) = extra {
        labels.push((k.to_owned(), v.to_owned()));
    }
    labels
}

/// The handle of `family`'s series with `labels`.
///
/// One call per statement: a family's read guard lives until the end of
/// the statement that took it, and a second `get_or_create` on the same
/// family within it would wait for a write lock forever.
fn series<M: Clone>(family: &Family<Labels, M, impl Fn() -> M>, labels: &Labels) -> M {
    family.get_or_create(labels).clone()
}

/// Every metric family of the process.
#[derive(Debug, Clone)]
pub struct Stats {
    connections: Family<Labels, Counter>,
    active: Family<Labels, Gauge>,
    rejected: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    upstream_duration: Family<Labels, Histogram, fn() -> Histogram>,
    connect_errors: Family<Labels, Counter>,
    dns_refreshes: Family<Labels, Counter>,
    ejections: Family<Labels, Counter>,
    denied: Family<Labels, Counter>,
}

impl Stats {
    /// Creates the families and registers them.
    pub fn register(metrics: &podkit_runtime::Metrics) -> Self {
        let s = Self {
            connections: Family::default(),
            active: Family::default(),
            rejected: Family::default(),
            bytes: Family::default(),
            requests: Family::default(),
            upstream_duration: Family::new_with_constructor(new_histogram as fn() -> Histogram),
            connect_errors: Family::default(),
            dns_refreshes: Family::default(),
            ejections: Family::default(),
            denied: Family::default(),
        };
        metrics.register(
            "podkit_ambassador_connections",
            "Client connections accepted, by listener and mode",
            s.connections.clone(),
        );
        metrics.register(
            "podkit_ambassador_connections_active",
            "Client connections open now, by listener",
            s.active.clone(),
        );
        metrics.register(
            "podkit_ambassador_connections_rejected",
            "Client connections or requests refused by a limit, by listener and reason",
            s.rejected.clone(),
        );
        metrics.register(
            "podkit_ambassador_bytes",
            "Bytes proxied, by listener and direction (to_upstream, to_client)",
            s.bytes.clone(),
        );
        metrics.register(
            "podkit_ambassador_requests",
            "HTTP requests answered, by listener and status code",
            s.requests.clone(),
        );
        metrics.register(
            "podkit_ambassador_upstream_request_duration_seconds",
            "Time from sending a request (or connecting, in tcp mode) to the upstream's response headers (or connection)",
            s.upstream_duration.clone(),
        );
        metrics.register(
            "podkit_ambassador_upstream_connect_errors",
            "Failed connects to upstream endpoints, by upstream",
            s.connect_errors.clone(),
        );
        metrics.register(
            "podkit_ambassador_dns_refreshes",
            "Upstream name resolutions, by upstream and result (ok, error)",
            s.dns_refreshes.clone(),
        );
        metrics.register(
            "podkit_ambassador_endpoint_ejections",
            "Endpoints ejected after consecutive connect failures, by upstream",
            s.ejections.clone(),
        );
        metrics.register(
            "podkit_ambassador_denied",
            "Forward proxy destinations refused by policy, by listener and reason",
            s.denied.clone(),
        );
        s
    }

    /// Handles for one listener.
    pub fn listener(&self, name: &str, mode: &str) -> ListenerStats {
        let l = |extra| labels("listener", name, extra);
        let connections = series(&self.connections, &l(Some(("mode", mode))));
        let rejected_limit = series(&self.rejected, &l(Some(("reason", "max_connections"))));
        let rejected_size = series(&self.rejected, &l(Some(("reason", "size"))));
        let to_upstream = series(&self.bytes, &l(Some(("direction", "to_upstream"))));
        let to_client = series(&self.bytes, &l(Some(("direction", "to_client"))));
        let active = series(&self.active, &l(None));
        let duration = series(&self.upstream_duration, &l(None));
        ListenerStats {
            name: name.to_owned(),
            connections,
            active,
            rejected_limit,
            rejected_size,
            to_upstream,
            to_client,
            duration,
            requests: self.requests.clone(),
            by_code: Arc::new((0..600).map(|_| OnceLock::new()).collect()),
            denied: self.denied.clone(),
        }
    }

    /// Handles for one upstream.
    pub fn upstream(&self, name: &str) -> UpstreamStats {
        let l = |extra| labels("upstream", name, extra);
        let connect_errors = series(&self.connect_errors, &l(None));
        let dns_ok = series(&self.dns_refreshes, &l(Some(("result", "ok"))));
        let dns_error = series(&self.dns_refreshes, &l(Some(("result", "error"))));
        let ejections = series(&self.ejections, &l(None));
        UpstreamStats {
            connect_errors,
            dns_ok,
            dns_error,
            ejections,
        }
    }
}

/// One listener's metric handles.
#[derive(Debug, Clone)]
pub struct ListenerStats {
    name: String,
    /// Accepted connections.
    pub connections: Counter,
    /// Open connections.
    pub active: Gauge,
    /// Connections refused at the connection limit.
    pub rejected_limit: Counter,
    /// Requests refused for their size.
    pub rejected_size: Counter,
    /// Bytes from clients to upstreams.
    pub to_upstream: Counter,
    /// Bytes from upstreams to clients.
    pub to_client: Counter,
    /// Upstream latency.
    pub duration: Histogram,
    requests: Family<Labels, Counter>,
    /// The `requests` counter of each status code, looked up once: the hot
    /// path then does one atomic add, no label allocation.
    by_code: Arc<Vec<OnceLock<Counter>>>,
    denied: Family<Labels, Counter>,
}

impl ListenerStats {
    /// Counts an answered request.
    pub fn request(&self, status: u16) {
        let counter = || {
            series(
                &self.requests,
                &labels("listener", &self.name, Some(("code", &status.to_string()))),
            )
        };
        match self.by_code.get(usize::from(status)) {
            Some(slot) => slot.get_or_init(counter).inc(),
            None => counter().inc(),
        };
    }

    /// Counts a destination refused by policy.
    pub fn denied(&self, reason: &str) {
        self.denied
            .get_or_create(&labels("listener", &self.name, Some(("reason", reason))))
            .inc();
    }
}

/// One upstream's metric handles.
#[derive(Debug, Clone)]
pub struct UpstreamStats {
    /// Failed connects.
    pub connect_errors: Counter,
    /// Successful resolutions.
    pub dns_ok: Counter,
    /// Failed resolutions.
    pub dns_error: Counter,
    /// Ejections.
    pub ejections: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_created_and_encoded_without_deadlock() {
        let metrics = podkit_runtime::Metrics::new("ambassador");
        let stats = Stats::register(&metrics);
        let l = stats.listener("tcp:127.0.0.1:81", "tcp");
        let u = stats.upstream("db:5432");
        l.to_upstream.inc_by(10);
        l.request(200);
        u.dns_ok.inc();
        let text = metrics.encode();
        assert!(
            text.contains("podkit_ambassador_bytes_total{listener=\"tcp:127.0.0.1:81\",direction=\"to_upstream\"} 10"),
            "{text}"
        );
        assert!(text.contains("podkit_ambassador_requests_total{listener=\"tcp:127.0.0.1:81\",code=\"200\"} 1"));
        assert!(text.contains("podkit_ambassador_dns_refreshes_total{upstream=\"db:5432\",result=\"ok\"} 1"));
    }
}
