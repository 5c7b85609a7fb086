//! Kubernetes pods run on a docker engine the way the kubelet runs them, so
//! the manifests in `k8s/` are tested as written (they double as fixtures).
//!
//! A [`PodSpec`] is read from a manifest (the subset of `v1.Pod` the kubelet
//! needs to start containers; fields it does not emulate are ignored, and a
//! field it would get wrong is refused). A [`Network`] is a private docker
//! network per run (`--internal`: nothing leaves it), where helper containers
//! such as the stand-in for `example.com` join under network aliases. A
//! [`Pod`] on it is:
//!
//! - a *pause* container owning the network namespace (alias: the pod's
//!   name), with the pod's `sysctls`; every container joins it with
//!   `--network container:`, so they share `127.0.0.1` as in a pod;
//! - one docker volume per `emptyDir`, made world-writable (`0777`, as the
//!   kubelet creates emptyDirs) and, with `fsGroup`, group-owned with setgid;
//! - init containers in order: a regular one must exit 0 before the next
//!   starts; a native sidecar (`restartPolicy: Always`) is started, and its
//!   `startupProbe` must pass before the next; then the app containers, and
//!   [`Pod::start`] returns once every `readinessProbe` passes;
//! - security contexts as docker flags: `runAsUser`/`runAsGroup` → `--user`,
//!   `readOnlyRootFilesystem` → `--read-only`, `capabilities` →
//!   `--cap-drop`/`--cap-add`, `allowPrivilegeEscalation: false` →
//!   `no-new-privileges`, `fsGroup` → `--group-add`;
//! - env variables with their plain values, and downward-API `fieldRef`s
//!   resolved as the kubelet resolves them ([`Field`]): the pod's name,
//!   namespace (`default`), uid (generated, fixed for the pod's life), node
//!   ([`NODE_NAME`]), service account (`default`), IP (the pause
//!   container's, also as `status.hostIP`), one label or annotation; other
//!   sources (`secretKeyRef`, `configMapKeyRef`, `resourceFieldRef`, ...)
//!   are refused;
//! - [`Pod::stop`] in the kubelet's order: the app containers first (all at
//!   once), then the sidecars in reverse order, each with what is left of
//!   `terminationGracePeriodSeconds`; it reports each exit code.
//!
//! HTTP probes run from a busybox container in the pod's network namespace
//! against the pod's IP (as the kubelet probes it), retrying every
//! `periodSeconds` up to `failureThreshold` times: readiness is awaited, never
//! slept on. Images are mapped by repository (`podkit/ambassador:0.1.0` → the
//! image id the test built), so a manifest names the images users pull.
//!
//! Every docker object is named `<run>-...` and labelled `podkit.test-run`,
//! and is removed when its owner drops (also when a test panics).

use std::collections::BTreeMap;
use std::fmt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// An error from the pod emulation: a docker command that failed, a manifest
/// it cannot run faithfully, or a pod that did not come up.
#[derive(Debug)]
pub struct PodError(pub String);

impl fmt::Display for PodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PodError {}

/// Results of the pod emulation.
pub type Result<T, E = PodError> = std::result::Result<T, E>;

fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(PodError(message.into()))
}

/// The label every docker object of a run carries (`podkit.test-run=<run>`):
/// `docker rm -f $(docker ps -aq --filter label=podkit.test-run)` removes
/// whatever an interrupted run left behind.
pub const RUN_LABEL: &str = "podkit.test-run";

// === manifest ===

/// The part of a `v1.Pod` manifest the emulation reads.
#[derive(Debug, Clone, Deserialize)]
pub struct PodSpec {
    /// `metadata`.
    pub metadata: Metadata,
    /// `spec`.
    pub spec: Spec,
}

/// `metadata` (`Default` so that a pod built in code names only what it
/// needs: `Metadata { name, ..Default::default() }`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    /// The pod's name (its network alias on the test network).
    pub name: String,
    /// The namespace (`default` when the manifest names none, as `kubectl
    /// apply` without `-n` would place it).
    pub namespace: Option<String>,
    /// Labels (readable through the downward API).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (readable through the downward API).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// Pod-level security context.
    #[serde(default)]
    pub security_context: PodSecurityContext,
    /// Volumes (only `emptyDir` is emulated).
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// Init containers, regular and native sidecars.
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// App containers.
    pub containers: Vec<Container>,
    /// Seconds the pod has to stop (default 30).
    pub termination_grace_period_seconds: Option<u64>,
    /// The service account (`default` when unset).
    pub service_account_name: Option<String>,
}

/// `spec.securityContext`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    /// Default uid of every container.
    pub run_as_user: Option<u32>,
    /// Default gid of every container.
    pub run_as_group: Option<u32>,
    /// Whether uid 0 is refused.
    #[serde(default)]
    pub run_as_non_root: bool,
    /// Supplementary group owning the volumes.
    pub fs_group: Option<u32>,
    /// Namespaced sysctls, set on the pause container.
    #[serde(default)]
    pub sysctls: Vec<Sysctl>,
}

/// A `sysctls` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Sysctl {
    /// e.g. `net.ipv4.ip_unprivileged_port_start`.
    pub name: String,
    /// The value, as a string.
    pub value: String,
}

/// A `volumes` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// The volume's name.
    pub name: String,
    /// Present for an emptyDir.
    pub empty_dir: Option<serde::de::IgnoredAny>,
}

/// A container or init container.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Its name in the pod.
    pub name: String,
    /// The image as users pull it.
    pub image: String,
    /// Replaces the image's entrypoint.
    #[serde(default)]
    pub command: Vec<String>,
    /// Replaces the image's cmd.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables (plain values and downward-API `fieldRef`s).
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// `Always` on an init container makes it a native sidecar.
    pub restart_policy: Option<String>,
    /// Volume mounts.
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
    /// Container security context (overrides the pod's).
    #[serde(default)]
    pub security_context: ContainerSecurityContext,
    /// Gates the next container (sidecars).
    pub startup_probe: Option<Probe>,
    /// Gates pod readiness.
    pub readiness_probe: Option<Probe>,
}

impl Container {
    /// Whether this is a native sidecar (init container with `restartPolicy: Always`).
    pub fn is_sidecar(&self) -> bool {
        self.restart_policy.as_deref() == Some("Always")
    }
}

/// An `env` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Plain value.
    pub value: Option<String>,
    /// Where the value comes from instead (only `fieldRef` is emulated).
    pub value_from: Option<EnvVarSource>,
}

/// `env[].valueFrom`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    /// The downward API: a field of the pod.
    pub field_ref: Option<FieldRef>,
    /// Every other source (`resourceFieldRef`, `secretKeyRef`,
    /// `configMapKeyRef`, ...), by key: refused, since the emulation has no
    /// resources, secrets or config maps to read.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde::de::IgnoredAny>,
}

/// `valueFrom.fieldRef`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    /// e.g. `metadata.name`, `metadata.labels['app']`.
    pub field_path: String,
    /// `v1` when given.
    pub api_version: Option<String>,
}

/// A `volumeMounts` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// The volume.
    pub name: String,
    /// Where it is mounted.
    pub mount_path: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// `containers[].securityContext`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSecurityContext {
    /// uid.
    pub run_as_user: Option<u32>,
    /// gid.
    pub run_as_group: Option<u32>,
    /// `--read-only`.
    #[serde(default)]
    pub read_only_root_filesystem: bool,
    /// `false` → `no-new-privileges`.
    pub allow_privilege_escalation: Option<bool>,
    /// Capabilities to drop and add.
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// `capabilities`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Capabilities {
    /// Dropped (`ALL` drops every one).
    #[serde(default)]
    pub drop: Vec<String>,
    /// Added back.
    #[serde(default)]
    pub add: Vec<String>,
}

/// A probe (only `httpGet` is emulated).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// The HTTP check.
    pub http_get: Option<HttpGet>,
    /// Seconds between attempts (default 10).
    pub period_seconds: Option<u64>,
    /// Attempts before giving up (default 3).
    pub failure_threshold: Option<u64>,
}

/// `httpGet`.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpGet {
    /// Request path.
    #[serde(default = "root_path")]
    pub path: String,
    /// Port number (named ports are not emulated).
    pub port: u16,
}

fn root_path() -> String {
    "/".to_owned()
}

impl PodSpec {
    /// Parses a manifest holding one Pod.
    pub fn parse(yaml: &str) -> Result<Self> {
        serde_saphyr::from_str(yaml).map_err(|e| PodError(format!("not a pod manifest: {e}")))
    }

    /// Reads and parses a manifest file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let yaml = std::fs::read_to_string(path).map_err(|e| PodError(format!("reading {}: {e}", path.display())))?;
        Self::parse(&yaml).map_err(|e| PodError(format!("{}: {e}", path.display())))
    }

    /// A container or init container by name.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.spec
            .init_containers
            .iter()
            .chain(&self.spec.containers)
            .find(|c| c.name == name)
    }
}

// === downward API ===

/// The node every emulated pod runs on: what `spec.nodeName` reads.
pub const NODE_NAME: &str = "podkit-test-node";

/// A pod field an env variable reads through `valueFrom.fieldRef`: the
/// paths the kubelet resolves for env (`metadata.labels` and
/// `metadata.annotations` as a whole only exist in downwardAPI volumes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `metadata.name`.
    Name,
    /// `metadata.namespace`.
    Namespace,
    /// `metadata.uid`.
    Uid,
    /// `spec.nodeName`.
    NodeName,
    /// `spec.serviceAccountName`.
    ServiceAccountName,
    /// `status.podIP`.
    PodIp,
    /// `status.hostIP`.
    HostIp,
    /// `metadata.labels['KEY']`.
    Label(String),
    /// `metadata.annotations['KEY']`.
    Annotation(String),
}

/// What the kubelet knows of a pod beyond its manifest, once its sandbox
/// runs.
#[derive(Debug, Clone, Copy)]
pub struct Sandbox<'a> {
    /// `metadata.uid`.
    pub uid: &'a str,
    /// The pause container's IP: `status.podIP`, and `status.hostIP` (the
    /// emulated node has no other address a container could reach).
    pub ip: &'a str,
}

impl Field {
    /// Reads a `fieldPath`; a path the kubelet would not resolve for env, or
    /// one the emulation cannot answer, is an error naming it.
    pub fn parse(path: &str) -> Result<Self> {
        let subscript = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix("['"))
                .and_then(|rest| rest.strip_suffix("']"))
                .filter(|key| !key.is_empty() && !key.contains('\''))
                .map(str::to_owned)
        };
        Ok(match path {
            "metadata.name" => Self::Name,
            "metadata.namespace" => Self::Namespace,
            "metadata.uid" => Self::Uid,
            "spec.nodeName" => Self::NodeName,
            "spec.serviceAccountName" => Self::ServiceAccountName,
            "status.podIP" => Self::PodIp,
            "status.hostIP" => Self::HostIp,
            "metadata.labels" | "metadata.annotations" => {
                return err(format!(
                    "fieldPath {path} is only valid in a downwardAPI volume; an env variable reads one key: {path}['KEY']"
                ));
            }
            _ => {
                if let Some(key) = subscript("metadata.labels") {
                    Self::Label(key)
                } else if let Some(key) = subscript("metadata.annotations") {
                    Self::Annotation(key)
                } else {
                    return err(format!(
                        "fieldPath {path:?} is not emulated (metadata.name, metadata.namespace, metadata.uid, \
                         metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, \
                         spec.serviceAccountName, status.podIP, status.hostIP)"
                    ));
                }
            }
        })
    }

    /// The value the kubelet would put in the variable (a label or
    /// annotation the pod does not have reads as empty).
    pub fn resolve(&self, spec: &PodSpec, sandbox: Sandbox<'_>) -> String {
        let meta = &spec.metadata;
        match self {
            Self::Name => meta.name.clone(),
            Self::Namespace => meta.namespace.clone().unwrap_or_else(|| "default".to_owned()),
            Self::Uid => sandbox.uid.to_owned(),
            Self::NodeName => NODE_NAME.to_owned(),
            Self::ServiceAccountName => spec
                .spec
                .service_account_name
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            Self::PodIp | Self::HostIp => sandbox.ip.to_owned(),
            Self::Label(key) => meta.labels.get(key).cloned().unwrap_or_default(),
            Self::Annotation(key) => meta.annotations.get(key).cloned().unwrap_or_default(),
        }
    }
}

/// The downward-API field `var` reads (None for a plain value), or an error
/// naming the container, the variable and what the emulation cannot provide.
fn env_field(c: &Container, var: &EnvVar) -> Result<Option<Field>> {
    let Some(from) = &var.value_from else {
        return Ok(None);
    };
    let fail = |what: String| err(format!("container {}: env {}: {what}", c.name, var.name));
    if var.value.is_some() {
        return fail("both value and valueFrom (the API server refuses that)".into());
    }
    if let Some(source) = from.other.keys().next() {
        return fail(format!(
            "valueFrom.{source} is not emulated (only fieldRef: the test pods have no secrets, config maps or resource limits to read)"
        ));
    }
    let Some(field_ref) = &from.field_ref else {
        return fail("valueFrom names no source".into());
    };
    if let Some(version) = field_ref.api_version.as_deref().filter(|v| *v != "v1") {
        return fail(format!("fieldRef.apiVersion {version} (only v1)"));
    }
    match Field::parse(&field_ref.field_path) {
        Ok(field) => Ok(Some(field)),
        Err(e) => fail(e.0),
    }
}

/// A uid for a pod, fixed for its life and unique per run: the shape of
/// the API server's (a random UUID), derived from the pod's docker prefix.
fn pod_uid(prefix: &str) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        (salt, prefix).hash(&mut h);
        h.finish()
    };
    let (hi, lo) = (half(0), half(1));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xfff,
        0x8000 | (lo >> 48) & 0x3fff,
        lo & 0xffff_ffff_ffff
    )
}

// === images ===

/// Which local image runs a manifest's image, by repository
/// (`podkit/ambassador` → `sha256:...`); the tag in the manifest is ignored.
#[derive(Debug, Clone, Default)]
pub struct Images(BTreeMap<String, String>);

impl Images {
    /// Reads `repository=image id` lines (what `cargo xtask images --ids` writes).
    pub fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(r, id)| (r.trim().to_owned(), id.trim().to_owned()))
                .collect(),
        )
    }

    /// Maps `repository` to `id`.
    pub fn insert(&mut self, repository: &str, id: &str) {
        self.0.insert(repository.to_owned(), id.to_owned());
    }

    /// The local image for a manifest's `image`.
    pub fn resolve(&self, image: &str) -> Result<&str> {
        let repository = match image.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => image,
        };
        let repository = repository.strip_prefix("docker.io/library/").unwrap_or(repository);
        self.0
            .get(repository)
            .map(String::as_str)
            .ok_or_else(|| PodError(format!("no local image for {image} (have {:?})", self.0.keys())))
    }
}

// === docker ===

/// Runs `docker` with `args`, returning its output; fails on a non-zero exit.
pub fn docker(args: &[&str]) -> Result<String> {
    let out = docker_output(args)?;
    if !out.status.success() {
        return err(format!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `docker` with `args` and returns its raw output, whatever the exit.
pub fn docker_output(args: &[&str]) -> Result<Output> {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PodError(format!("cannot run docker: {e}")))
}

/// Removes docker objects, ignoring those already gone.
fn remove(kind: &[&str], names: &[String]) {
    if names.is_empty() {
        return;
    }
    let mut args: Vec<&str> = kind.to_vec();
    args.extend(names.iter().map(String::as_str));
    let _ = docker_output(&args);
}

/// A container's logs (stdout and stderr, interleaved as docker kept them).
pub fn logs(container: &str) -> String {
    match docker_output(&["logs", container]) {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => e.0,
    }
}

/// A container's exit code once it has stopped (None while it runs).
pub fn exit_code(container: &str) -> Result<Option<i32>> {
    let out = docker(&["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", container])?;
    let mut words = out.split_whitespace();
    if words.next() == Some("true") {
        return Ok(None);
    }
    words
        .next()
        .and_then(|c| c.parse().ok())
        .map(Some)
        .ok_or_else(|| PodError(format!("bad inspect output {out:?}")))
}

/// A busybox shell loop that retries `attempt` every 100 ms for up to 30 s
/// (the test kit's patience), then runs `then`: how a container awaits what
/// another one does. Only the last failed attempt's stderr is reported, with
/// the command (needs a writable /tmp).
pub fn retry(attempt: &str, then: &str) -> String {
    format!(
        "i=0; until {{ {attempt} ; }} 2>/tmp/.retry-err; do i=$((i+1)); \
         if [ $i -ge 300 ]; then echo 'gave up waiting: {}' >&2; cat /tmp/.retry-err >&2; exit 1; fi; \
         sleep 0.1; done; {then}",
        attempt.replace('\'', "")
    )
}

/// A unique prefix for this run's docker objects: `<prefix>-<pid>-<nanos>`.
pub fn run_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{:x}{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private docker network for one run, with helper containers on it.
/// Dropping it removes the helpers and the network.
pub struct Network {
    /// The network's (and the run's) name.
    pub name: String,
    helpers: std::sync::Mutex<Vec<String>>,
}

impl Network {
    /// Creates an internal network (no route out) named `run`.
    pub fn create(run: &str) -> Result<Self> {
        docker(&[
            "network",
            "create",
            "--internal",
            "--label",
            &format!("{RUN_LABEL}={run}"),
            run,
        ])?;
        Ok(Self {
            name: run.to_owned(),
            helpers: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Starts a detached helper container `<run>-<name>` on the network,
    /// reachable as each of `aliases`, with extra docker `flags`; returns its
    /// docker name.
    pub fn start_helper(
        &self,
        name: &str,
        aliases: &[&str],
        flags: &[&str],
        image: &str,
        command: &[&str],
    ) -> Result<String> {
        let full = format!("{}-{name}", self.name);
        self.track(&full);
        let label = format!("{RUN_LABEL}={}", self.name);
        let mut args = vec!["run", "-d", "--name", &full, "--label", &label, "--network", &self.name];
        for alias in aliases {
            args.extend(["--network-alias", alias]);
        }
        args.extend_from_slice(flags);
        args.push(image);
        args.extend_from_slice(command);
        docker(&args)?;
        Ok(full)
    }

    /// Runs a container to completion on the network (`docker run --rm`)
    /// with extra docker flags; returns its output whatever its exit code.
    pub fn run_once(&self, flags: &[&str], image: &str, command: &[&str]) -> Result<Output> {
        let label = format!("{RUN_LABEL}={}", self.name);
        let mut args = vec!["run", "--rm", "--label", &label];
        if !flags.iter().any(|f| f.starts_with("--network")) {
            args.extend(["--network", &self.name]);
        }
        args.extend_from_slice(flags);
        args.push(image);
        args.extend_from_slice(command);
        docker_output(&args)
    }

    /// Runs a shell `script` (`sh -c`) once in a container of `image` on
    /// the network, with extra docker flags; its output whatever its exit
    /// code.
    pub fn shell(&self, flags: &[&str], image: &str, script: &str) -> Result<Output> {
        self.run_once(flags, image, &["sh", "-c", script])
    }

    fn track(&self, name: &str) {
        if let Ok(mut helpers) = self.helpers.lock() {
            helpers.push(name.to_owned());
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let helpers = self.helpers.lock().map(|h| h.clone()).unwrap_or_default();
        remove(&["rm", "-f", "-v"], &helpers);
        remove(&["network", "rm"], std::slice::from_ref(&self.name));
    }
}

/// How a container stopped in [`Pod::stop`].
#[derive(Debug, Clone)]
pub struct Stopped {
    /// The container's name in the pod.
    pub container: String,
    /// Its exit code.
    pub exit_code: i32,
    /// From the stop request to the exit.
    pub took: Duration,
}

/// A pod on a [`Network`]. Dropping it removes its containers and volumes.
pub struct Pod<'n> {
    /// The manifest.
    pub spec: PodSpec,
    network: &'n Network,
    images: Images,
    /// Busybox image for the pause container, volume setup and probes.
    busybox: String,
    /// `<run>-<pod name>`: the pause container; containers are `<prefix>-<name>`.
    prefix: String,
    /// The pod's IP on the network, once created.
    ip: String,
    /// `metadata.uid`, fixed at creation.
    uid: String,
    created: std::sync::Mutex<Vec<String>>,
    volumes: Vec<String>,
}

impl<'n> Pod<'n> {
    /// Checks the manifest can be emulated faithfully, creates the volumes
    /// and the pause container (sandbox). Nothing of the pod's own runs yet.
    pub fn create(spec: PodSpec, network: &'n Network, images: Images) -> Result<Self> {
        let busybox = images.resolve("busybox")?.to_owned();
        let prefix = format!("{}-{}", network.name, spec.metadata.name);
        check_supported(&spec)?;
        let mut pod = Self {
            volumes: spec
                .spec
                .volumes
                .iter()
                .map(|v| format!("{prefix}-{}", v.name))
                .collect(),
            spec,
            network,
            images,
            busybox,
            uid: pod_uid(&prefix),
            prefix,
            ip: String::new(),
            created: std::sync::Mutex::new(Vec::new()),
        };
        let label = format!("{RUN_LABEL}={}", network.name);
        for volume in &pod.volumes {
            docker(&["volume", "create", "--label", &label, volume])?;
        }
        // emptyDir: created 0777 by the kubelet; fsGroup: group-owned, setgid.
        let mut setup = "chmod 0777 /v".to_owned();
        if let Some(group) = pod.spec.spec.security_context.fs_group {
            setup.push_str(&format!(" && chgrp {group} /v && chmod g+s /v"));
        }
        for volume in &pod.volumes {
            let mount = format!("{volume}:/v");
            let out = network.run_once(
                &["--network", "none", "-v", &mount],
                &pod.busybox,
                &["sh", "-c", &setup],
            )?;
            if !out.status.success() {
                return err(format!(
                    "setting up volume {volume}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let pause = pod.prefix.clone();
        pod.track(&pause);
        let hostname = pod.spec.metadata.name.clone();
        let mut args = vec![
            "run",
            "-d",
            "--init",
            "--name",
            &pause,
            "--label",
            &label,
            "--network",
            &network.name,
            "--network-alias",
            &hostname,
            "--hostname",
            &hostname,
        ];
        let sysctls: Vec<String> = pod
            .spec
            .spec
            .security_context
            .sysctls
            .iter()
            .map(|s| format!("{}={}", s.name, s.value))
            .collect();
        for sysctl in &sysctls {
            args.extend(["--sysctl", sysctl]);
        }
        args.extend([pod.busybox.as_str(), "sleep", "2147483647"]);
        docker(&args)?;
        pod.ip = docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &pause,
        ])?
        .trim()
        .to_owned();
        if pod.ip.is_empty() {
            return err(format!("the pause container {pause} has no IP"));
        }
        Ok(pod)
    }

    /// The docker name of a container of the pod.
    pub fn container_name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// The pause container (owner of the network namespace).
    pub fn pause_name(&self) -> &str {
        &self.prefix
    }

    /// The pod's IP on the test network.
    pub fn ip(&self) -> &str {
        &self.ip
    }

    /// The pod's `metadata.uid`, as the downward API gives it.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The environment a container gets: plain values, and downward-API
    /// fields resolved as the kubelet resolves them.
    pub fn env(&self, c: &Container) -> Result<Vec<(String, String)>> {
        let sandbox = Sandbox {
            uid: &self.uid,
            ip: &self.ip,
        };
        c.env
            .iter()
            .map(|var| {
                let value = match env_field(c, var)? {
                    Some(field) => field.resolve(&self.spec, sandbox),
                    None => var.value.clone().unwrap_or_default(),
                };
                Ok((var.name.clone(), value))
            })
            .collect()
    }

    /// The docker volume behind a pod volume.
    pub fn volume_name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Runs a busybox shell `script` with no network and the pod volume
    /// `volume` mounted read-only at `at`, to see what the pod wrote there;
    /// its output whatever its exit code.
    pub fn read_volume(&self, volume: &str, at: &str, script: &str) -> Result<Output> {
        let mount = format!("{}:{at}:ro", self.volume_name(volume));
        self.network
            .shell(&["--network", "none", "-v", &mount], &self.busybox, script)
    }

    /// Runs the pod up to Ready: init containers in order (regular ones to a
    /// 0 exit, sidecars to a passing startup probe), then the app
    /// containers, then waits for every readiness probe. `log` hears each step.
    pub fn start(&self, log: &mut dyn FnMut(&str)) -> Result<()> {
        for container in &self.spec.spec.init_containers {
            if container.is_sidecar() {
                self.run_container(container)?;
                log(&format!("sidecar {} started", container.name));
                if let Some(probe) = &container.startup_probe {
                    self.await_probe(container, probe, "startup")?;
                    log(&format!("sidecar {} passed its startup probe", container.name));
                }
            } else {
                let name = self.run_container(container)?;
                log(&format!("init container {} running", container.name));
                let code = docker(&["wait", &name])?;
                let code = code.trim();
                if code != "0" {
                    return err(format!(
                        "init container {} exited {code}; logs:\n{}",
                        container.name,
                        logs(&name)
                    ));
                }
                log(&format!("init container {} exited 0", container.name));
            }
        }
        for container in &self.spec.spec.containers {
            self.run_container(container)?;
            log(&format!("container {} started", container.name));
        }
        for container in self
            .spec
            .spec
            .init_containers
            .iter()
            .filter(|c| c.is_sidecar())
            .chain(&self.spec.spec.containers)
        {
            if let Some(probe) = &container.readiness_probe {
                self.await_probe(container, probe, "readiness")?;
                log(&format!("container {} ready", container.name));
            }
        }
        Ok(())
    }

    /// Stops the pod as the kubelet does: SIGTERM to every app container at
    /// once, then to each sidecar in reverse order once the apps are gone,
    /// all within `terminationGracePeriodSeconds`. Returns how each exited.
    pub fn stop(&self) -> Result<Vec<Stopped>> {
        let grace = Duration::from_secs(self.spec.spec.termination_grace_period_seconds.unwrap_or(30));
        let started = Instant::now();
        let apps: Vec<&Container> = self.spec.spec.containers.iter().collect();
        let mut stopped = Vec::new();
        let app_names: Vec<String> = apps.iter().map(|c| self.container_name(&c.name)).collect();
        let t = grace.as_secs().to_string();
        let mut args = vec!["stop", "-t", &t];
        args.extend(app_names.iter().map(String::as_str));
        docker(&args)?;
        for (container, name) in apps.iter().zip(&app_names) {
            stopped.push(Stopped {
                container: container.name.clone(),
                exit_code: exit_code(name)?.unwrap_or(-1),
                took: started.elapsed(),
            });
        }
        for sidecar in self.spec.spec.init_containers.iter().rev().filter(|c| c.is_sidecar()) {
            let name = self.container_name(&sidecar.name);
            let left = grace.saturating_sub(started.elapsed()).as_secs().max(1).to_string();
            let before = Instant::now();
            docker(&["stop", "-t", &left, &name])?;
            stopped.push(Stopped {
                container: sidecar.name.clone(),
                exit_code: exit_code(&name)?.unwrap_or(-1),
                took: before.elapsed(),
            });
        }
        Ok(stopped)
    }

    /// `docker run -d` of one container into the pod; returns its docker name.
    fn run_container(&self, c: &Container) -> Result<String> {
        let name = self.container_name(&c.name);
        self.track(&name);
        let pod_sc = &self.spec.spec.security_context;
        let sc = &c.security_context;
        let user = sc.run_as_user.or(pod_sc.run_as_user);
        let group = sc.run_as_group.or(pod_sc.run_as_group);
        if pod_sc.run_as_non_root && user.unwrap_or(0) == 0 {
            return err(format!(
                "container {}: runAsNonRoot but no non-zero runAsUser (the kubelet would refuse an image's own user it cannot verify)",
                c.name
            ));
        }
        let label = format!("{RUN_LABEL}={}", self.network.name);
        let network = format!("container:{}", self.prefix);
        let mut args: Vec<String> = ["run", "-d", "--name", &name, "--label", &label, "--network", &network]
            .map(String::from)
            .to_vec();
        if let Some(uid) = user {
            args.extend(["--user".into(), format!("{uid}:{}", group.unwrap_or(uid))]);
        }
        if let Some(fs_group) = pod_sc.fs_group {
            args.extend(["--group-add".into(), fs_group.to_string()]);
        }
        if sc.read_only_root_filesystem {
            args.push("--read-only".into());
        }
        if sc.allow_privilege_escalation == Some(false) {
            args.extend(["--security-opt".into(), "no-new-privileges".into()]);
        }
        for cap in &sc.capabilities.drop {
            args.extend(["--cap-drop".into(), cap.clone()]);
        }
        for cap in &sc.capabilities.add {
            args.extend(["--cap-add".into(), cap.clone()]);
        }
        for (name, value) in self.env(c)? {
            args.extend(["-e".into(), format!("{name}={value}")]);
        }
        for mount in &c.volume_mounts {
            let ro = if mount.read_only { ":ro" } else { "" };
            args.extend([
                "-v".into(),
                format!("{}:{}{ro}", self.volume_name(&mount.name), mount.mount_path),
            ]);
        }
        let mut rest = Vec::new();
        if let Some((entrypoint, command_args)) = c.command.split_first() {
            args.extend(["--entrypoint".into(), entrypoint.clone()]);
            rest.extend(command_args.iter().cloned());
        }
        rest.extend(c.args.iter().cloned());
        args.push(self.images.resolve(&c.image)?.to_owned());
        args.extend(rest);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args)?;
        Ok(name)
    }

    /// Probes like the kubelet: from the pod's network namespace to its IP,
    /// every `periodSeconds` until it passes or `failureThreshold` attempts
    /// failed. Fails early if the container exits meanwhile.
    fn await_probe(&self, c: &Container, probe: &Probe, kind: &str) -> Result<()> {
        let Some(get) = &probe.http_get else {
            return err(format!("container {}: only httpGet probes are emulated", c.name));
        };
        let url = format!("http://{}:{}{}", self.ip, get.port, get.path);
        let period = probe.period_seconds.unwrap_or(10);
        let attempts = probe.failure_threshold.unwrap_or(3);
        // One container runs the whole probe loop. (`timeout`, since the
        // `-T` of Debian's static busybox 1.35 wget crashes it.)
        let script = format!(
            "i=0; until last=$(timeout 1 wget -q -O /dev/null '{url}' 2>&1); do i=$((i+1)); \
             if [ $i -ge {attempts} ]; then echo \"{kind} probe {url} failed {attempts} times, last: $last\"; exit 1; fi; \
             sleep {period}; done"
        );
        let network = format!("container:{}", self.prefix);
        let out = self.network.run_once(
            &[
                "--network",
                &network,
                "--user",
                "65532:65532",
                "--read-only",
                "--cap-drop",
                "ALL",
            ],
            &self.busybox,
            &["sh", "-c", &script],
        )?;
        if out.status.success() {
            return Ok(());
        }
        err(format!(
            "container {}: {} {}; its logs:\n{}",
            c.name,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim(),
            logs(&self.container_name(&c.name))
        ))
    }

    fn track(&self, name: &str) {
        if let Ok(mut created) = self.created.lock() {
            created.push(name.to_owned());
        }
    }
}

/// Refuses manifests the emulation would run differently from the kubelet.
fn check_supported(spec: &PodSpec) -> Result<()> {
    for volume in &spec.spec.volumes {
        if volume.empty_dir.is_none() {
            return err(format!("volume {}: only emptyDir is emulated", volume.name));
        }
    }
    for c in spec.spec.init_containers.iter().chain(&spec.spec.containers) {
        for var in &c.env {
            env_field(c, var)?;
            if var.value.as_deref().is_some_and(|v| v.contains("$(")) {
                return err(format!(
                    "container {}: env {}: $(VAR) expansion is not emulated",
                    c.name, var.name
                ));
            }
        }
        if c.command.iter().chain(&c.args).any(|a| a.contains("$(")) {
            return err(format!("container {}: $(VAR) expansion is not emulated", c.name));
        }
        for mount in &c.volume_mounts {
            if !spec.spec.volumes.iter().any(|v| v.name == mount.name) {
                return err(format!("container {}: no volume {}", c.name, mount.name));
            }
        }
    }
    Ok(())
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        let mut created = self.created.lock().map(|c| c.clone()).unwrap_or_default();
        // Containers first (the pause container last), then the volumes.
        created.reverse();
        remove(&["rm", "-f", "-v"], &created);
        remove(&["volume", "rm", "-f"], &self.volumes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_pod_with_a_native_sidecar() {
        let spec = PodSpec::parse(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {app: x}\nspec:\n  \
             securityContext: {runAsUser: 65532, fsGroup: 65532, sysctls: [{name: a.b, value: \"0\"}]}\n  \
             volumes: [{name: v, emptyDir: {}}]\n  initContainers:\n  - name: s\n    image: podkit/ambassador:0.1.0\n    \
             restartPolicy: Always\n    args: [\"--reverse\", \"127.0.0.1:81=http://example.com\"]\n    \
             startupProbe: {httpGet: {path: /readyz, port: 9703}, periodSeconds: 1}\n  containers:\n  \
             - name: app\n    image: busybox:1.36\n    volumeMounts: [{name: v, mountPath: /d, readOnly: true}]\n    \
             ports: [{containerPort: 80}]\n",
        )
        .expect("parses");
        assert_eq!(spec.metadata.name, "p");
        let sidecar = spec.container("s").expect("sidecar");
        assert!(sidecar.is_sidecar());
        assert_eq!(
            sidecar
                .startup_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .map(|g| g.port),
            Some(9703)
        );
        assert!(
            spec.container("app")
                .is_some_and(|c| !c.is_sidecar() && c.volume_mounts[0].read_only)
        );
        assert_eq!(spec.spec.security_context.sysctls[0].value, "0");
        check_supported(&spec).expect("supported");
    }

    fn env_pod(env: &str) -> PodSpec {
        PodSpec::parse(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n  \
             labels: {{app: shop, app.kubernetes.io/name: web}}\n  annotations: {{team: a}}\nspec:\n  \
             containers:\n  - name: app\n    image: busybox:1.36\n    env:\n{env}"
        ))
        .expect("parses")
    }

    #[test]
    fn downward_api_fields_resolve_as_the_kubelet_resolves_them() {
        let spec = env_pod(
            "    - {name: A, value: plain}\n\
             \x20   - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n\
             \x20   - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}\n\
             \x20   - {name: UID, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.uid}}}\n\
             \x20   - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n\
             \x20   - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}\n\
             \x20   - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n\
             \x20   - {name: HOST, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}\n\
             \x20   - {name: APP, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app.kubernetes.io/name']\"}}}\n\
             \x20   - {name: TEAM, valueFrom: {fieldRef: {fieldPath: \"metadata.annotations['team']\"}}}\n\
             \x20   - {name: NONE, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['absent']\"}}}\n",
        );
        check_supported(&spec).expect("supported");
        let uid = pod_uid("run-1-web-0");
        let sandbox = Sandbox {
            uid: &uid,
            ip: "172.18.0.2",
        };
        let c = &spec.spec.containers[0];
        let got: Vec<(String, String)> = c
            .env
            .iter()
            .map(|var| {
                let value = match env_field(c, var).expect("emulated") {
                    Some(field) => field.resolve(&spec, sandbox),
                    None => var.value.clone().unwrap_or_default(),
                };
                (var.name.clone(), value)
            })
            .collect();
        let want = [
            ("A", "plain"),
            ("POD", "web-0"),
            ("NS", "default"),
            ("UID", uid.as_str()),
            ("NODE", NODE_NAME),
            ("SA", "default"),
            ("IP", "172.18.0.2"),
            ("HOST", "172.18.0.2"),
            ("APP", "web"),
            ("TEAM", "a"),
            ("NONE", ""),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(got, want);

        // Set in the manifest: the namespace and service account are read from it.
        let mut spec = spec;
        spec.metadata.namespace = Some("shop".into());
        spec.spec.service_account_name = Some("web".into());
        assert_eq!(Field::Namespace.resolve(&spec, sandbox), "shop");
        assert_eq!(Field::ServiceAccountName.resolve(&spec, sandbox), "web");
    }

    #[test]
    fn a_pod_uid_is_fixed_per_pod_and_shaped_like_the_api_servers() {
        let uid = pod_uid("run-1-web-0");
        assert_eq!(uid, pod_uid("run-1-web-0"));
        assert_ne!(uid, pod_uid("run-2-web-0"));
        let groups: Vec<usize> = uid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{uid}");
        assert!(uid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{uid}");
        assert_eq!(&uid[14..15], "4", "version 4: {uid}");
    }

    #[test]
    fn env_sources_the_emulation_cannot_provide_are_refused_by_name() {
        for (env, says) in [
            (
                "{name: S, valueFrom: {secretKeyRef: {name: s, key: k}}}",
                "env S: valueFrom.secretKeyRef is not emulated",
            ),
            (
                "{name: C, valueFrom: {configMapKeyRef: {name: c, key: k}}}",
                "env C: valueFrom.configMapKeyRef is not emulated",
            ),
            (
                "{name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}",
                "env CPU: valueFrom.resourceFieldRef is not emulated",
            ),
            (
                "{name: L, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}",
                "only valid in a downwardAPI volume",
            ),
            (
                "{name: G, valueFrom: {fieldRef: {fieldPath: metadata.generation}}}",
                "fieldPath \"metadata.generation\" is not emulated",
            ),
            (
                "{name: V, valueFrom: {fieldRef: {apiVersion: v2, fieldPath: metadata.name}}}",
                "fieldRef.apiVersion v2",
            ),
            ("{name: E, valueFrom: {}}", "valueFrom names no source"),
            (
                "{name: X, value: \"$(POD)-x\"}",
                "env X: $(VAR) expansion is not emulated",
            ),
        ] {
            let spec = env_pod(&format!("    - {env}\n"));
            let e = check_supported(&spec).expect_err(env);
            assert!(e.0.starts_with("container app: ") && e.0.contains(says), "{env}: {e}");
        }
    }

    #[test]
    fn images_resolve_by_repository() {
        let images = Images::parse("podkit/ambassador=sha256:aa\nbusybox=sha256:bb\n");
        assert_eq!(images.resolve("podkit/ambassador:0.1.0").ok(), Some("sha256:aa"));
        assert_eq!(images.resolve("docker.io/library/busybox:1.36").ok(), Some("sha256:bb"));
        assert_eq!(images.resolve("busybox").ok(), Some("sha256:bb"));
        assert!(images.resolve("nginx:1").is_err());
    }
}
