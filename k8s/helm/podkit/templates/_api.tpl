{{/*
The named templates a parent chart includes in its own pod spec. Each takes
the root context (`.`) of the including chart, whose values hold this chart's
under `podkit`, or `(dict "context" $ "values" .Values.<alias>)` for an
aliased dependency. Container templates print a YAML list (nothing when the
helper is off), to be placed under `containers:` or `initContainers:` with
nindent; "podkit.initContainers" and "podkit.containers" place every helper
where it belongs (native sidecars or plain containers).
*/}}

{{/* log-shipper's container (a native sidecar's restartPolicy included). */}}
{{- define "podkit.logShipper.container" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- include "podkit.impl.logShipper.container" $s -}}
{{- end -}}

{{/* tail-rewrite's container. */}}
{{- define "podkit.tailRewrite.container" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- include "podkit.impl.tailRewrite.container" $s -}}
{{- end -}}

{{/* The ambassador's container. */}}
{{- define "podkit.ambassador.container" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- include "podkit.impl.ambassador.container" $s -}}
{{- end -}}

{{/* wait-for's init container. */}}
{{- define "podkit.waitFor.initContainer" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- include "podkit.impl.waitFor.initContainer" $s -}}
{{- end -}}

{{/* Every helper init container, in order: native sidecars, then wait-for. */}}
{{- define "podkit.initContainers" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- include "podkit.impl.initContainers" $s -}}
{{- end -}}

{{/* The helpers that run as plain containers (before Kubernetes 1.29, or nativeSidecars: false). */}}
{{- define "podkit.containers" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- include "podkit.impl.containers" $s -}}
{{- end -}}

{{/* The pod volumes the helpers need (shared logs, state, config, secrets). */}}
{{- define "podkit.volumes" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- include "podkit.impl.volumes" $s -}}
{{- end -}}

{{/* The app container's mount of the shared log volume. */}}
{{- define "podkit.appVolumeMounts" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- include "podkit.impl.appVolumeMounts" $s -}}
{{- end -}}

{{/* Pod annotations: podAnnotations and the config checksum. */}}
{{- define "podkit.podAnnotations" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- include "podkit.impl.podAnnotations" $s -}}
{{- end -}}

{{/* Pod sysctls the helpers need (ports below 1024). */}}
{{- define "podkit.sysctls" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- include "podkit.impl.sysctls" $s -}}
{{- end -}}

{{/* true when the pod needs its service account token (wait-for k8s: targets), else false. */}}
{{- define "podkit.automountServiceAccountToken" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- if include "podkit.impl.automountToken" $s }}true{{ else }}false{{ end -}}
{{- end -}}

{{/* The ServiceAccount name the pod should use. */}}
{{- define "podkit.serviceAccount" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- include "podkit.serviceAccountName" $s -}}
{{- end -}}

{{/* The full name of this chart's resources (the ConfigMap is <fullname>-config). */}}
{{- define "podkit.fullname" -}}
{{- $s := dict -}}
{{- include "podkit.scope" (list . $s) -}}
{{- $s.fullname -}}
{{- end -}}
