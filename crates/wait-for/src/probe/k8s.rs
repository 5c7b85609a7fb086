//! Kubernetes targets, read from the API server with the pod's
//! service-account token (re-read on every attempt: bound tokens rotate).
//!
//! The readiness rules are the ones `kubectl rollout status` and the
//! controllers use:
//! - pod: the `Ready` condition is `True` (with a selector: every matching
//!   pod, and at least one);
//! - deployment: `status.observedGeneration >= metadata.generation` and
//!   `updatedReplicas == availableReplicas == spec.replicas`;
//! - statefulset: observed generation as above,
//!   `readyReplicas == updatedReplicas == spec.replicas` and
//!   `currentRevision == updateRevision`;
//! - job: the `Complete` condition; a `Failed` condition ends the wait at once;
//! - service: an EndpointSlice (label `kubernetes.io/service-name`) holding
//!   an endpoint with an address whose `ready` condition is not false.
//!
//! A 403 names the missing RBAC permission.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use http::{HeaderValue, Method, StatusCode, Uri};
use podkit_runtime::ConfigError;
use podkit_tls::{ClientTls, Trust};
use rustls::ClientConfig;
use serde_json::Value;

use super::http::{fetch, request};
use super::{Check, Fail};
use crate::Args;
use crate::net::Resolver;
use crate::target::{HostPort, K8sKind, K8sObject};

/// Where the pod's service account files are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The largest API answer read (a big pod list).
const BODY_LIMIT: usize = 16 << 20;

/// How to reach the API server.
#[derive(Debug, Clone)]
pub struct K8sEnv {
    /// The API server's address.
    pub addr: HostPort,
    /// TLS to it (`None` for a plain-HTTP API URL, as in tests or `kubectl proxy`).
    pub tls: Option<Arc<ClientConfig>>,
    /// The bearer token file; `None` sends no token (`kubectl proxy`).
    pub token_file: Option<PathBuf>,
    /// The namespace of targets that name none.
    pub namespace: String,
}

impl K8sEnv {
    /// How to reach the API server, from `--k8s-*` and the pod's service
    /// account: `--k8s-api`, else `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`;
    /// the token, CA and namespace from their flags, else the service
    /// account's files. Errors are configuration errors naming the flag.
    pub fn from_args(args: &Args) -> anyhow::Result<Self> {
        let sa = Path::new(SERVICE_ACCOUNT_DIR);
        let (tls, addr) = match (&args.k8s_api, &args.kubernetes_service_host) {
            (Some(url), _) => api_url(url)?,
            (None, Some(host)) => {
                let port = args.kubernetes_service_port.as_deref().unwrap_or("443");
                let port = port
                    .parse()
                    .map_err(|_| ConfigError::new(format!("KUBERNETES_SERVICE_PORT: `{port}` is not a port number")))?;
                let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
                (true, HostPort { host, port })
            }
            (None, None) => bail!(ConfigError::new(
                "k8s: targets need the API server: run in a pod (KUBERNETES_SERVICE_HOST) or give --k8s-api"
            )),
        };
        let token_file = match &args.k8s_token_file {
            Some(file) => {
                std::fs::metadata(file)
                    .map_err(|e| ConfigError::new(format!("--k8s-token-file: cannot read {}: {e}", file.display())))?;
                Some(file.clone())
            }
            None => Some(sa.join("token")).filter(|f| f.exists()),
        };
        let tls = if tls {
            let k8s_error = |e: podkit_tls::TlsError| ConfigError::new(format!("--k8s-ca-file: {e}"));
            let trust = match &args.k8s_ca_file {
                Some(file) => Trust::from_pem_file(file).map_err(k8s_error)?,
                None if sa.join("ca.crt").exists() => Trust::from_pem_file(&sa.join("ca.crt")).map_err(k8s_error)?,
                None => Trust::WebRoots,
            };
            Some(ClientTls::new(trust).client_config(&[b"http/1.1"]).map_err(k8s_error)?)
        } else {
            None
        };
        let namespace = match &args.k8s_namespace {
            Some(ns) => ns.clone(),
            None => std::fs::read_to_string(sa.join("namespace"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "default".to_owned()),
        };
        Ok(Self {
            addr,
            tls,
            token_file,
            namespace,
        })
    }
}

/// `--k8s-api URL`: whether it is https, and its host and port (443 or 80
/// when it names none).
fn api_url(url: &str) -> anyhow::Result<(bool, HostPort)> {
    let bad = || ConfigError::new(format!("--k8s-api: `{url}` is not a URL like https://10.96.0.1:443"));
    let uri: Uri = url.parse().map_err(|_| bad())?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => bail!(ConfigError::new(format!(
            "--k8s-api: `{url}` is not an http:// or https:// URL"
        ))),
    };
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad().into());
    }
    let authority = uri.authority().ok_or_else(bad)?.as_str();
    let after_host = authority.rsplit_once(']').map_or(authority, |(_, rest)| rest);
    let port = match (after_host.contains(':'), uri.port_u16()) {
        (false, _) => {
            if tls {
                443
            } else {
                80
            }
        }
        (true, Some(port)) => port,
        (true, None) => return Err(bad().into()),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty() && !authority.contains('@'))
        .ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    Ok((tls, HostPort { host, port }))
}

/// What to ask the API server for one object, and how to explain a 403.
struct Query {
    path: String,
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    namespace: String,
    what: String,
}

fn query(env: &K8sEnv, obj: &K8sObject) -> Query {
    let ns = obj.namespace.clone().unwrap_or_else(|| env.namespace.clone());
    let name = obj.name.clone().unwrap_or_default();
    let (prefix, group, resource) = match obj.kind {
        K8sKind::Pod => ("/api/v1", "", "pods"),
        K8sKind::Deployment => ("/apis/apps/v1", "apps", "deployments"),
        K8sKind::StatefulSet => ("/apis/apps/v1", "apps", "statefulsets"),
        K8sKind::Job => ("/apis/batch/v1", "batch", "jobs"),
        K8sKind::Service => ("/apis/discovery.k8s.io/v1", "discovery.k8s.io", "endpointslices"),
    };
    let (path, verb, what) = match (&obj.kind, &obj.selector) {
        (K8sKind::Service, _) => (
            format!(
                "{prefix}/namespaces/{ns}/{resource}?labelSelector={}",
                encode(&format!("kubernetes.io/service-name={name}"))
            ),
            "list",
            format!("service {ns}/{name}"),
        ),
        (_, Some(selector)) => (
            format!("{prefix}/namespaces/{ns}/{resource}?labelSelector={}", encode(selector)),
            "list",
            format!("pods {ns}/{selector}"),
        ),
        (kind, None) => (
            format!("{prefix}/namespaces/{ns}/{resource}/{name}"),
            "get",
            format!("{} {ns}/{name}", kind_name(*kind)),
        ),
    };
    Query {
        path,
        verb,
        group,
        resource,
        namespace: ns,
        what,
    }
}

fn kind_name(kind: K8sKind) -> &'static str {
    match kind {
        K8sKind::Pod => "pod",
        K8sKind::Deployment => "deployment",
        K8sKind::StatefulSet => "statefulset",
        K8sKind::Job => "job",
        K8sKind::Service => "service",
    }
}

/// One attempt at a Kubernetes target.
pub async fn check(resolver: &Resolver, env: &K8sEnv, obj: &K8sObject) -> Check {
    let q = query(env, obj);
    let scheme = if env.tls.is_some() { "https" } else { "http" };
    let url: http::Uri = format!("{scheme}://{}{}", env.addr, q.path)
        .parse()
        .map_err(|e| Fail::Fatal(format!("bad API URL: {e}")))?;
    let mut request = request(&Method::GET, &url, &env.addr);
    request
        .headers_mut()
        .insert(http::header::ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(file) = &env.token_file {
        let token = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "cannot read the token {}: {}",
                file.display(),
                podkit_tls::describe_io_error(&e)
            )
        })?;
        let value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| format!("the token in {} is not a valid header value", file.display()))?;
        request.headers_mut().insert(http::header::AUTHORIZATION, value);
    }
    let answer = fetch(resolver, &env.addr, env.tls.as_ref(), request, Some(BODY_LIMIT)).await?;
    let json: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let message = json
        .as_ref()
        .and_then(|j| j["message"].as_str())
        .unwrap_or("")
        .to_owned();
    match answer.status {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return Err(format!("{} not found", q.what).into()),
        StatusCode::FORBIDDEN => return Err(forbidden(&q, &message).into()),
        StatusCode::UNAUTHORIZED => {
            return Err("401 Unauthorized: the API server rejected the service-account token".into());
        }
        status => return Err(format!("API server answered {}: {message}", status.as_u16()).into()),
    }
    let json = json.ok_or("the API server's answer is not JSON")?;
    match (obj.kind, &obj.selector) {
        (K8sKind::Pod, Some(selector)) => pods_ready(&json, selector),
        (K8sKind::Pod, None) => pod_ready(&json),
        (K8sKind::Deployment, _) => deployment_ready(&json),
        (K8sKind::StatefulSet, _) => statefulset_ready(&json),
        (K8sKind::Job, _) => job_complete(&json),
        (K8sKind::Service, _) => service_ready(&json),
    }
}

/// The 403 explanation: which verb on which resource the service account lacks.
fn forbidden(q: &Query, message: &str) -> String {
    let group = if q.group.is_empty() { "\"\" (core)" } else { q.group };
    let mut text = format!(
        "403 Forbidden: the service account may not `{}` {} in namespace {}; grant a Role with \
         apiGroups [{group}], resources [{}], verbs [{}] and bind it to the service account",
        q.verb, q.resource, q.namespace, q.resource, q.verb
    );
    if !message.is_empty() {
        text.push_str(&format!(" (API server: {message})"));
    }
    text
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn is_true(cond: Option<&Value>) -> bool {
    cond.is_some_and(|c| c["status"] == "True")
}

/// A pod's `Ready` condition.
pub fn pod_ready(pod: &Value) -> Check {
    let ready = condition(pod, "Ready");
    if is_true(ready) {
        return Ok(());
    }
    let phase = pod["status"]["phase"].as_str().unwrap_or("Unknown");
    let why = ready
        .and_then(|c| c["message"].as_str().or(c["reason"].as_str()))
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    Err(format!("pod not ready (phase {phase}{why})").into())
}

/// Every pod in a list ready, and at least one.
pub fn pods_ready(list: &Value, selector: &str) -> Check {
    let items = list["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        return Err(format!("no pods match {selector}").into());
    }
    let unready: Vec<&str> = items
        .iter()
        .filter(|p| pod_ready(p).is_err())
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("?"))
        .collect();
    if unready.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} pods ready; not ready: {}",
            items.len() - unready.len(),
            items.len(),
            unready.join(", ")
        )
        .into())
    }
}

fn generation_observed(obj: &Value) -> Check {
    let generation = int(&obj["metadata"]["generation"]);
    let observed = int(&obj["status"]["observedGeneration"]);
    if observed < generation {
        Err(format!("rollout not observed yet (generation {generation}, observed {observed})").into())
    } else {
        Ok(())
    }
}

fn desired(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// A deployment rolled out: generation observed, updated = available = desired.
pub fn deployment_ready(dep: &Value) -> Check {
    generation_observed(dep)?;
    let want = desired(dep);
    let updated = int(&dep["status"]["updatedReplicas"]);
    let available = int(&dep["status"]["availableReplicas"]);
    if updated != want {
        return Err(format!("{updated} of {want} replicas updated").into());
    }
    if available != want {
        return Err(format!("{available} of {want} replicas available").into());
    }
    Ok(())
}

/// A statefulset rolled out: generation observed, ready = updated = desired,
/// current revision = update revision.
pub fn statefulset_ready(sts: &Value) -> Check {
    generation_observed(sts)?;
    let want = desired(sts);
    let ready = int(&sts["status"]["readyReplicas"]);
    let updated = int(&sts["status"]["updatedReplicas"]);
    if updated != want {
        return Err(format!("{updated} of {want} replicas updated").into());
    }
    if ready != want {
        return Err(format!("{ready} of {want} replicas ready").into());
    }
    let current = sts["status"]["currentRevision"].as_str().unwrap_or("");
    let update = sts["status"]["updateRevision"].as_str().unwrap_or("");
    if current != update {
        return Err(format!("revision {current} not yet replaced by {update}").into());
    }
    Ok(())
}

/// A job's `Complete` condition; `Failed` is final.
pub fn job_complete(job: &Value) -> Check {
    if let Some(failed) = condition(job, "Failed").filter(|c| c["status"] == "True") {
        let reason = failed["reason"].as_str().unwrap_or("Failed");
        let message = failed["message"].as_str().unwrap_or("");
        return Err(Fail::Fatal(
            format!("job failed: {reason}: {message}")
                .trim_end_matches(": ")
                .to_owned(),
        ));
    }
    if is_true(condition(job, "Complete")) {
        return Ok(());
    }
    let active = int(&job["status"]["active"]);
    let succeeded = int(&job["status"]["succeeded"]);
    Err(format!("job not complete ({active} active, {succeeded} succeeded)").into())
}

/// A service's EndpointSlices hold a ready endpoint.
pub fn service_ready(slices: &Value) -> Check {
    let items = slices["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        return Err("no EndpointSlices (no pods selected yet?)".into());
    }
    let endpoints = items.iter().filter_map(|s| s["endpoints"].as_array()).flatten();
    let mut total = 0;
    for endpoint in endpoints {
        let has_address = endpoint["addresses"].as_array().is_some_and(|a| !a.is_empty());
        // A missing `ready` means unknown, which consumers treat as ready.
        let ready = endpoint["conditions"]["ready"].as_bool().unwrap_or(true);
        if has_address && ready {
            return Ok(());
        }
        total += 1;
    }
    Err(format!("no ready endpoints ({total} not ready)").into())
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn api_urls_give_scheme_host_and_port() {
        let hp = |url: &str| {
            api_url(url)
                .map(|(tls, a)| (tls, a.host, a.port))
                .map_err(|e| e.to_string())
        };
        assert_eq!(hp("https://10.96.0.1"), Ok((true, "10.96.0.1".into(), 443)));
        assert_eq!(hp("http://127.0.0.1:8001/"), Ok((false, "127.0.0.1".into(), 8001)));
        assert_eq!(hp("https://[fd00::1]:6443"), Ok((true, "fd00::1".into(), 6443)));
        assert_eq!(hp("http://api.example"), Ok((false, "api.example".into(), 80)));
        for bad in [
            "ftp://x",
            "10.96.0.1:443",
            "https://x/api/v1",
            "https://x:notaport",
            "https://u@x",
        ] {
            let err = hp(bad).unwrap_err();
            assert!(err.contains("--k8s-api") && err.contains(bad), "{bad}: {err}");
        }
    }

    fn reason(check: Check) -> String {
        match check {
            Err(Fail::NotReady(r)) => r,
            other => panic!("expected not ready, got {other:?}"),
        }
    }

    #[test]
    fn pods() {
        let ready = json!({"metadata": {"name": "a"}, "status": {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}});
        let unready = json!({"metadata": {"name": "b"}, "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
             "message": "containers with unready status: [app]"}]}});
        assert_eq!(pod_ready(&ready), Ok(()));
        assert_eq!(
            reason(pod_ready(&unready)),
            "pod not ready (phase Running: containers with unready status: [app])"
        );
        assert_eq!(
            reason(pod_ready(&json!({"status": {"phase": "Pending"}}))),
            "pod not ready (phase Pending)"
        );
        assert_eq!(pods_ready(&json!({"items": [ready.clone()]}), "app=x"), Ok(()));
        assert_eq!(
            reason(pods_ready(&json!({"items": [ready, unready]}), "app=x")),
            "1 of 2 pods ready; not ready: b"
        );
        assert_eq!(
            reason(pods_ready(&json!({"items": []}), "app=x")),
            "no pods match app=x"
        );
    }

    #[test]
    fn deployments() {
        let dep = |generation, observed, replicas: Option<i64>, updated, available| {
            let mut d = json!({"metadata": {"generation": generation},
                "status": {"observedGeneration": observed, "updatedReplicas": updated,
                           "availableReplicas": available}, "spec": {}});
            if let Some(r) = replicas {
                d["spec"]["replicas"] = json!(r);
            }
            d
        };
        assert_eq!(deployment_ready(&dep(2, 2, Some(3), 3, 3)), Ok(()));
        assert_eq!(
            deployment_ready(&dep(1, 1, None, 1, 1)),
            Ok(()),
            "replicas default to 1"
        );
        assert!(reason(deployment_ready(&dep(3, 2, Some(3), 3, 3))).contains("not observed"));
        assert_eq!(
            reason(deployment_ready(&dep(2, 2, Some(3), 2, 3))),
            "2 of 3 replicas updated"
        );
        assert_eq!(
            reason(deployment_ready(&dep(2, 2, Some(3), 3, 2))),
            "2 of 3 replicas available"
        );
        // A surge pod still counted as available: the old one has not gone.
        assert!(deployment_ready(&dep(2, 2, Some(3), 3, 4)).is_err());
        // Status fields with zero values are omitted by the API server.
        assert_eq!(
            deployment_ready(&json!({"metadata": {"generation": 1}, "spec": {"replicas": 0},
                "status": {"observedGeneration": 1}})),
            Ok(())
        );
    }

    #[test]
    fn statefulsets() {
        let sts = |ready, updated, current: &str, update: &str| {
            json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
                "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": updated,
                           "currentRevision": current, "updateRevision": update}})
        };
        assert_eq!(statefulset_ready(&sts(2, 2, "r1", "r1")), Ok(()));
        assert_eq!(
            reason(statefulset_ready(&sts(1, 2, "r1", "r1"))),
            "1 of 2 replicas ready"
        );
        assert_eq!(
            reason(statefulset_ready(&sts(2, 1, "r1", "r2"))),
            "1 of 2 replicas updated"
        );
        assert!(reason(statefulset_ready(&sts(2, 2, "r1", "r2"))).contains("revision r1"));
    }

    #[test]
    fn jobs() {
        let job = |conditions: Value| json!({"status": {"active": 1, "conditions": conditions}});
        assert_eq!(
            job_complete(&job(json!([{"type": "Complete", "status": "True"}]))),
            Ok(())
        );
        assert_eq!(
            reason(job_complete(&job(json!([])))),
            "job not complete (1 active, 0 succeeded)"
        );
        assert_eq!(
            job_complete(&job(
                json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit"}])
            )),
            Err(Fail::Fatal(
                "job failed: BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            ))
        );
    }

    #[test]
    fn services() {
        let slices = |endpoints: Value| json!({"items": [{"endpoints": endpoints}]});
        assert_eq!(
            service_ready(&slices(
                json!([{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}])
            )),
            Ok(())
        );
        assert_eq!(service_ready(&slices(json!([{"addresses": ["10.0.0.1"]}]))), Ok(()));
        assert_eq!(
            reason(service_ready(&slices(
                json!([{"addresses": ["10.0.0.1"], "conditions": {"ready": false}}])
            ))),
            "no ready endpoints (1 not ready)"
        );
        assert_eq!(
            reason(service_ready(&slices(Value::Null))),
            "no ready endpoints (0 not ready)"
        );
        assert!(reason(service_ready(&json!({"items": []}))).contains("no EndpointSlices"));
    }

    #[test]
    fn queries_and_forbidden_messages() {
        let env = K8sEnv {
            addr: HostPort {
                host: "10.96.0.1".into(),
                port: 443,
            },
            tls: None,
            token_file: None,
            namespace: "app".into(),
        };
        let obj = |kind, name: Option<&str>, selector: Option<&str>| K8sObject {
            namespace: None,
            kind,
            name: name.map(Into::into),
            selector: selector.map(Into::into),
        };
        let q = query(&env, &obj(K8sKind::Deployment, Some("api"), None));
        assert_eq!(q.path, "/apis/apps/v1/namespaces/app/deployments/api");
        let text = forbidden(&q, "deployments.apps \"api\" is forbidden");
        assert!(
            text.contains("may not `get` deployments in namespace app")
                && text.contains("apiGroups [apps], resources [deployments], verbs [get]"),
            "{text}"
        );
        let q = query(&env, &obj(K8sKind::Service, Some("db"), None));
        assert_eq!(
            q.path,
            "/apis/discovery.k8s.io/v1/namespaces/app/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Ddb"
        );
        assert_eq!(q.verb, "list");
        let q = query(&env, &obj(K8sKind::Pod, None, Some("app=db,tier!=x")));
        assert_eq!(
            q.path,
            "/api/v1/namespaces/app/pods?labelSelector=app%3Ddb%2Ctier%21%3Dx"
        );
        assert!(forbidden(&q, "").contains("apiGroups [\"\" (core)], resources [pods], verbs [list]"));
    }
}
