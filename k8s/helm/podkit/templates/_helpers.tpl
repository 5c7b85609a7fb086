{{/*
Shared helpers of the podkit chart.

Every public named template (see _api.tpl) takes either the root context
(`.`), from this chart or from a parent chart that has podkit as a
dependency (the values are then read from `.Values.podkit`), or
`(dict "context" $ "values" .Values.<alias>)` for an aliased dependency.
"podkit.scope" turns that into a scope dict: `root` (the context), `v` (the
podkit values), `name`, `fullname`. Private templates take a scope.
*/}}

{{- define "podkit.scope" -}}
{{- $in := index . 0 -}}
{{- $s := index . 1 -}}
{{- if and (kindIs "map" $in) (hasKey $in "context") -}}
{{- $_ := set $s "root" $in.context -}}
{{- $_ := set $s "v" $in.values -}}
{{- else if hasKey $in.Values "podkit" -}}
{{- $_ := set $s "root" $in -}}
{{- $_ := set $s "v" $in.Values.podkit -}}
{{- else -}}
{{- $_ := set $s "root" $in -}}
{{- $_ := set $s "v" $in.Values -}}
{{- end -}}
{{- $name := default "podkit" $s.v.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- $_ := set $s "name" $name -}}
{{- $full := "" -}}
{{- if $s.v.fullnameOverride -}}
{{- $full = $s.v.fullnameOverride -}}
{{- else if contains $name $s.root.Release.Name -}}
{{- $full = $s.root.Release.Name -}}
{{- else -}}
{{- $full = printf "%s-%s" $s.root.Release.Name $name -}}
{{- end -}}
{{- $_ := set $s "fullname" ($full | trunc 63 | trimSuffix "-") -}}
{{- end -}}

{{/* Labels every resource carries. Takes a scope. */}}
{{- define "podkit.labels" -}}
{{- $l := dict "app.kubernetes.io/managed-by" .root.Release.Service "app.kubernetes.io/part-of" "podkit" -}}
{{- $_ := set $l "helm.sh/chart" (printf "podkit-%s" (include "podkit.chartVersion" .)) -}}
{{- $l = mergeOverwrite $l (fromYaml (include "podkit.selectorLabels" .)) (.v.commonLabels | default dict) -}}
{{- toYaml $l -}}
{{- end -}}

{{/* The pod selector. Takes a scope. */}}
{{- define "podkit.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* This chart's version, also when rendered from a parent chart. */}}
{{- define "podkit.chartVersion" -}}
{{- if eq .root.Chart.Name "podkit" -}}
{{- .root.Chart.Version | replace "+" "_" -}}
{{- else if and (hasKey .root "Subcharts") (hasKey .root.Subcharts "podkit") -}}
{{- .root.Subcharts.podkit.Chart.Version | replace "+" "_" -}}
{{- else -}}
{{- "dependency" -}}
{{- end -}}
{{- end -}}

{{/* The chart's appVersion, the default image tag. */}}
{{- define "podkit.appVersion" -}}
{{- if eq .root.Chart.Name "podkit" -}}
{{- .root.Chart.AppVersion -}}
{{- else if and (hasKey .root "Subcharts") (hasKey .root.Subcharts "podkit") -}}
{{- .root.Subcharts.podkit.Chart.AppVersion -}}
{{- else -}}
{{- "latest" -}}
{{- end -}}
{{- end -}}

{{/* An image reference: (list scope imageValues). */}}
{{- define "podkit.image" -}}
{{- $s := index . 0 -}}
{{- $i := index . 1 -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository (toString ($i.tag | default (include "podkit.appVersion" $s))) -}}
{{- end -}}
{{- end -}}

{{/* Whether helpers are native sidecars ("true"/""). Takes a scope. */}}
{{- define "podkit.native" -}}
{{- $mode := .v.nativeSidecars -}}
{{- if kindIs "bool" $mode -}}
{{- if $mode }}true{{ end -}}
{{- else if semverCompare ">=1.29.0-0" .root.Capabilities.KubeVersion.Version -}}
true
{{- end -}}
{{- end -}}

{{/* The ServiceAccount the pod runs as. Takes a scope. */}}
{{- define "podkit.serviceAccountName" -}}
{{- if .v.serviceAccount.create -}}
{{- .v.serviceAccount.name | default .fullname -}}
{{- else -}}
{{- .v.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
Settings → command-line flags, as a JSON list: `key: value` → `--key=value`,
a list → the flag repeated, `true` → `--key`, `false`/null/"" → nothing.
Keys are sorted, so the output is stable. A table (a `[[section]]`) cannot be
a flag: (list settings helperKey).
*/}}
{{- define "podkit.flags" -}}
{{- $settings := index . 0 -}}
{{- $helper := index . 1 -}}
{{- $out := list -}}
{{- range $k := keys $settings | sortAlpha -}}
{{- $val := index $settings $k -}}
{{- if kindIs "slice" $val -}}
{{- range $item := $val -}}
{{- if kindIs "map" $item -}}
{{- fail (printf "%s: `%s` holds tables ([[%s]] sections), which only a config file can carry: set %s.configFile=true" $helper $k $k $helper) -}}
{{- end -}}
{{- $out = append $out (printf "--%s=%s" $k (include "podkit.scalar" $item)) -}}
{{- end -}}
{{- else if kindIs "map" $val -}}
{{- fail (printf "%s: `%s` is a table, which only a config file can carry: set %s.configFile=true" $helper $k $helper) -}}
{{- else if kindIs "bool" $val -}}
{{- if $val -}}
{{- $out = append $out (printf "--%s" $k) -}}
{{- end -}}
{{- else if and (not (kindIs "invalid" $val)) (ne (toString $val) "") -}}
{{- $out = append $out (printf "--%s=%s" $k (include "podkit.scalar" $val)) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* A scalar as a flag value: whole numbers without an exponent. */}}
{{- define "podkit.scalar" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* A duration value as wait-for and the runtime read it: whole seconds → "Ns". */}}
{{- define "podkit.duration" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) -}}
{{- printf "%ss" (include "podkit.scalar" .) -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* A probe with the admin port filled in: (list probe port). */}}
{{- define "podkit.probe" -}}
{{- $p := deepCopy (index . 0) -}}
{{- $port := index . 1 -}}
{{- if and (hasKey $p "httpGet") (not (hasKey $p.httpGet "port")) -}}
{{- $_ := set $p.httpGet "port" (int $port) -}}
{{- end -}}
{{- if and (hasKey $p "tcpSocket") (not (hasKey $p.tcpSocket "port")) -}}
{{- $_ := set $p.tcpSocket "port" (int $port) -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

{{/* Whether the shared log volume exists ("true"/""). Takes a scope. */}}
{{- define "podkit.logVolume.enabled" -}}
{{- if or .v.logShipper.enabled .v.tailRewrite.enabled -}}true{{- end -}}
{{- end -}}

{{/* Whether any helper reads a config file from the ConfigMap. Takes a scope. */}}
{{- define "podkit.configMap.enabled" -}}
{{- range $key := list "logShipper" "tailRewrite" "ambassador" -}}
{{- $h := index $.v $key -}}
{{- if and $h.enabled $h.configFile -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The ConfigMap's data (file name → content). Takes a scope. The admin address
and grace period stay flags: they only change with a restart, and as part of
the pod spec a change of them rolls the pods.
*/}}
{{- define "podkit.configMap.data" -}}
{{- $data := dict -}}
{{- range $key, $file := dict "logShipper" "log-shipper.yaml" "tailRewrite" "tail-rewrite.yaml" "ambassador" "ambassador.yaml" -}}
{{- $h := index $.v $key -}}
{{- if and $h.enabled $h.configFile -}}
{{- $settings := omit (include (printf "podkit.%s.settings" $key) $ | fromYaml) "admin-addr" "grace-period" -}}
{{- $_ := set $data $file (printf "# %s settings rendered by the podkit chart.\n%s\n" $file (toYaml $settings)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $data -}}
{{- end -}}

{{/* Whether a port needs the unprivileged-port sysctl ("true"/""). Takes a scope. */}}
{{- define "podkit.lowPorts" -}}
{{- if .v.ambassador.enabled -}}
{{- range .v.ambassador.listeners -}}
{{- if lt (int .port) 1024 -}}true{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .v.logShipper.enabled .v.logShipper.serve.enabled (lt (int .v.logShipper.serve.port) 1024) -}}true{{- end -}}
{{- end -}}

{{/* The wait-for `k8s:` targets, parsed: a YAML list of {namespace, group, resource, verb, name}. Takes a scope. */}}
{{- define "podkit.waitFor.k8sTargets" -}}
{{- $out := list -}}
{{- if .v.waitFor.enabled -}}
{{- range $t := .v.waitFor.targets -}}
{{- if hasPrefix "k8s:" $t -}}
{{- $rest := trimPrefix "k8s:" $t -}}
{{- $selector := contains "?" $rest -}}
{{- $path := regexReplaceAll "\\?.*$" $rest "" -}}
{{- $parts := splitList "/" $path -}}
{{- $ns := $.root.Release.Namespace -}}
{{- $kind := "" -}}
{{- $name := "" -}}
{{- if $selector -}}
{{- if eq (len $parts) 2 -}}{{- $ns = index $parts 0 -}}{{- $kind = index $parts 1 -}}{{- else -}}{{- $kind = index $parts 0 -}}{{- end -}}
{{- else if eq (len $parts) 3 -}}
{{- $ns = index $parts 0 -}}{{- $kind = index $parts 1 -}}{{- $name = index $parts 2 -}}
{{- else if eq (len $parts) 2 -}}
{{- $kind = index $parts 0 -}}{{- $name = index $parts 1 -}}
{{- else -}}
{{- fail (printf "waitFor.targets: %q: write k8s:[namespace/]kind/name or k8s:[namespace/]pod?selector=…" $t) -}}
{{- end -}}
{{- $kind = lower $kind -}}
{{- $rule := dict "namespace" $ns "name" $name -}}
{{- if has $kind (list "pod" "pods" "po") -}}
{{- $_ := merge $rule (dict "group" "" "resource" "pods" "verb" (ternary "list" "get" $selector)) -}}
{{- else if has $kind (list "deployment" "deployments" "deploy") -}}
{{- $_ := merge $rule (dict "group" "apps" "resource" "deployments" "verb" "get") -}}
{{- else if has $kind (list "statefulset" "statefulsets" "sts") -}}
{{- $_ := merge $rule (dict "group" "apps" "resource" "statefulsets" "verb" "get") -}}
{{- else if has $kind (list "job" "jobs") -}}
{{- $_ := merge $rule (dict "group" "batch" "resource" "jobs" "verb" "get") -}}
{{- else if has $kind (list "service" "services" "svc") -}}
{{- $_ := merge $rule (dict "group" "discovery.k8s.io" "resource" "endpointslices" "verb" "list" "name" "") -}}
{{- else -}}
{{- fail (printf "waitFor.targets: %q: unknown kind `%s` (pod, deployment, statefulset, job, service)" $t $kind) -}}
{{- end -}}
{{- if eq $rule.verb "list" -}}
{{- $_ := set $rule "name" "" -}}
{{- end -}}
{{- $out = append $out $rule -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The enabled long-running helpers' admin ports: a YAML list of {name, port}. Takes a scope. */}}
{{- define "podkit.adminPorts" -}}
{{- $out := list -}}
{{- range $key, $short := dict "logShipper" "ls" "tailRewrite" "tr" "ambassador" "amb" -}}
{{- $h := index $.v $key -}}
{{- if and $h.enabled $h.adminPort -}}
{{- $out = append $out (dict "name" (printf "%s-admin" $short) "port" (int $h.adminPort)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}
