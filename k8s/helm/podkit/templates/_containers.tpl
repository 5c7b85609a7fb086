{{/*
The helpers' containers and the pod parts they need (volumes, mounts,
annotations), built as maps and printed with toYaml. Each template takes a
scope (see _helpers.tpl); _api.tpl wraps them for callers.
*/}}

{{/*
One helper container: (list scope valuesKey containerName generatedArgs mounts env longRunning).
With `args` set in the values, the generated arguments are left out.
*/}}
{{- define "podkit.container" -}}
{{- $s := index . 0 -}}
{{- $key := index . 1 -}}
{{- $v := index $s.v $key -}}
{{- $long := index . 6 -}}
{{- $c := dict "name" (index . 2) "image" (include "podkit.image" (list $s $v.image)) "imagePullPolicy" $v.image.pullPolicy -}}
{{- if $v.args -}}
{{- $_ := set $c "args" $v.args -}}
{{- else -}}
{{- $args := concat (index . 3) ($v.extraArgs | default list) -}}
{{- if $args -}}
{{- $_ := set $c "args" $args -}}
{{- end -}}
{{- end -}}
{{- $env := index . 5 -}}
{{- range $k := keys ($v.env | default dict) | sortAlpha -}}
{{- $env = append $env (dict "name" $k "value" (toString (index $v.env $k))) -}}
{{- end -}}
{{- $env = concat $env ($v.extraEnv | default list) -}}
{{- if $env -}}
{{- $_ := set $c "env" $env -}}
{{- end -}}
{{- $ports := list -}}
{{- if $v.adminPort -}}
{{- $ports = append $ports (dict "name" (printf "%s-admin" (index (dict "logShipper" "ls" "tailRewrite" "tr" "ambassador" "amb" "waitFor" "wf") $key)) "containerPort" (int $v.adminPort) "protocol" "TCP") -}}
{{- end -}}
{{- if and (eq $key "logShipper") $v.serve.enabled -}}
{{- $ports = append $ports (dict "name" "ls-serve" "containerPort" (int $v.serve.port) "protocol" "TCP") -}}
{{- end -}}
{{- if $ports -}}
{{- $_ := set $c "ports" $ports -}}
{{- end -}}
{{- if $long -}}
{{- if include "podkit.native" $s -}}
{{- $_ := set $c "restartPolicy" "Always" -}}
{{- end -}}
{{- range $probe, $field := dict "startup" "startupProbe" "readiness" "readinessProbe" "liveness" "livenessProbe" -}}
{{- $p := index ($v.probes | default dict) $probe -}}
{{- if $p -}}
{{- $_ := set $c $field (include "podkit.probe" (list $p $v.adminPort) | fromYaml) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $v.resources -}}
{{- $_ := set $c "resources" $v.resources -}}
{{- end -}}
{{- if $v.securityContext -}}
{{- $_ := set $c "securityContext" $v.securityContext -}}
{{- end -}}
{{- $mounts := concat (index . 4) ($v.extraVolumeMounts | default list) -}}
{{- if $mounts -}}
{{- $_ := set $c "volumeMounts" $mounts -}}
{{- end -}}
{{- toYaml (list $c) -}}
{{- end -}}

{{/* Arguments from settings, or --config with the settings in the ConfigMap: (list scope key file). */}}
{{- define "podkit.helperArgs" -}}
{{- $s := index . 0 -}}
{{- $key := index . 1 -}}
{{- $v := index $s.v $key -}}
{{- if $v.configFile -}}
{{- $settings := include (printf "podkit.%s.settings" $key) $s | fromYaml -}}
{{- $restart := pick $settings "admin-addr" "grace-period" -}}
{{- $args := list (printf "--config=%s/%s" $s.v.configFiles.mountPath (index . 2)) -}}
{{- toJson (concat $args (include "podkit.flags" (list $restart $key) | fromJsonArray)) -}}
{{- else -}}
{{- include "podkit.flags" (list (include (printf "podkit.%s.settings" $key) $s | fromYaml) $key) -}}
{{- end -}}
{{- end -}}

{{/* The config volume's mount, for a helper with configFile: (list scope key). */}}
{{- define "podkit.configMount" -}}
{{- $s := index . 0 -}}
{{- $v := index $s.v (index . 1) -}}
{{- $m := list -}}
{{- if $v.configFile -}}
{{- $m = append $m (dict "name" "podkit-config" "mountPath" $s.v.configFiles.mountPath "readOnly" true) -}}
{{- end -}}
{{- toJson $m -}}
{{- end -}}

{{- define "podkit.impl.logShipper.container" -}}
{{- $v := .v.logShipper -}}
{{- if $v.enabled -}}
{{- $mounts := list (dict "name" "podkit-logs" "mountPath" .v.logs.mountPath "readOnly" true) -}}
{{- if $v.stateDir.enabled -}}
{{- $mounts = append $mounts (dict "name" "log-shipper-state" "mountPath" $v.stateDir.path) -}}
{{- end -}}
{{- $mounts = concat $mounts (include "podkit.configMount" (list . "logShipper") | fromJsonArray) -}}
{{- range $i, $sink := $v.sinks -}}
{{- if $sink.bearerTokenSecret -}}
{{- $mounts = append $mounts (dict "name" (printf "log-shipper-sink-%d-token" (int $i)) "mountPath" (include "podkit.sinkSecretDir" (list $i "token")) "readOnly" true) -}}
{{- end -}}
{{- if $sink.basicAuth -}}
{{- $mounts = append $mounts (dict "name" (printf "log-shipper-sink-%d-basic" (int $i)) "mountPath" (include "podkit.sinkSecretDir" (list $i "basic")) "readOnly" true) -}}
{{- end -}}
{{- end -}}
{{- $env := list -}}
{{- if $v.downwardLabels.enabled -}}
{{- range $k := keys ($v.downwardLabels.fields | default dict) | sortAlpha -}}
{{- $field := index $v.downwardLabels.fields $k -}}
{{- $env = append $env (dict "name" (include "podkit.downwardEnv" (list $k $field)) "valueFrom" (dict "fieldRef" (dict "fieldPath" $field))) -}}
{{- end -}}
{{- end -}}
{{- include "podkit.container" (list . "logShipper" "log-shipper" (include "podkit.helperArgs" (list . "logShipper" "log-shipper.yaml") | fromJsonArray) $mounts $env true) -}}
{{- end -}}
{{- end -}}

{{- define "podkit.impl.tailRewrite.container" -}}
{{- $v := .v.tailRewrite -}}
{{- if $v.enabled -}}
{{- $writes := and $v.output.path (hasPrefix (printf "%s/" (trimSuffix "/" .v.logs.mountPath)) $v.output.path) -}}
{{- $logs := dict "name" "podkit-logs" "mountPath" .v.logs.mountPath -}}
{{- if not $writes -}}
{{- $_ := set $logs "readOnly" true -}}
{{- end -}}
{{- $mounts := list $logs -}}
{{- if $v.stateDir.enabled -}}
{{- $mounts = append $mounts (dict "name" "tail-rewrite-state" "mountPath" $v.stateDir.path) -}}
{{- end -}}
{{- $mounts = concat $mounts (include "podkit.configMount" (list . "tailRewrite") | fromJsonArray) -}}
{{- include "podkit.container" (list . "tailRewrite" "tail-rewrite" (include "podkit.helperArgs" (list . "tailRewrite" "tail-rewrite.yaml") | fromJsonArray) $mounts (list) true) -}}
{{- end -}}
{{- end -}}

{{- define "podkit.impl.ambassador.container" -}}
{{- $v := .v.ambassador -}}
{{- if $v.enabled -}}
{{- $mounts := include "podkit.configMount" (list . "ambassador") | fromJsonArray -}}
{{- if $v.tls.secretName -}}
{{- $mounts = append $mounts (dict "name" "ambassador-tls" "mountPath" "/etc/podkit/tls/ambassador" "readOnly" true) -}}
{{- end -}}
{{- include "podkit.container" (list . "ambassador" "ambassador" (include "podkit.helperArgs" (list . "ambassador" "ambassador.yaml") | fromJsonArray) $mounts (list) true) -}}
{{- end -}}
{{- end -}}

{{- define "podkit.impl.waitFor.initContainer" -}}
{{- $v := .v.waitFor -}}
{{- if $v.enabled -}}
{{- $args := concat (include "podkit.flags" (list (include "podkit.waitFor.settings" . | fromYaml) "waitFor") | fromJsonArray) $v.targets -}}
{{- include "podkit.container" (list . "waitFor" "wait-for" $args (list) (list) false) -}}
{{- end -}}
{{- end -}}

{{/* Init containers: the native sidecars (ambassador first, so wait-for and the app can use it), then wait-for. */}}
{{- define "podkit.impl.initContainers" -}}
{{- $out := list -}}
{{- if include "podkit.native" . -}}
{{- range $key := list "ambassador" "logShipper" "tailRewrite" -}}
{{- $out = concat $out (include (printf "podkit.impl.%s.container" $key) $ | fromYamlArray) -}}
{{- end -}}
{{- end -}}
{{- $out = concat $out (include "podkit.impl.waitFor.initContainer" . | fromYamlArray) -}}
{{- if $out -}}
{{- toYaml $out -}}
{{- end -}}
{{- end -}}

{{/* Containers: the helpers when they are not native sidecars. */}}
{{- define "podkit.impl.containers" -}}
{{- $out := list -}}
{{- if not (include "podkit.native" .) -}}
{{- range $key := list "ambassador" "logShipper" "tailRewrite" -}}
{{- $out = concat $out (include (printf "podkit.impl.%s.container" $key) $ | fromYamlArray) -}}
{{- end -}}
{{- end -}}
{{- if $out -}}
{{- toYaml $out -}}
{{- end -}}
{{- end -}}

{{/* The pod volumes the helpers need. */}}
{{- define "podkit.impl.volumes" -}}
{{- $out := list -}}
{{- if include "podkit.logVolume.enabled" . -}}
{{- $out = append $out (merge (dict "name" "podkit-logs") (deepCopy .v.logs.volume)) -}}
{{- end -}}
{{- if include "podkit.configMap.enabled" . -}}
{{- $out = append $out (dict "name" "podkit-config" "configMap" (dict "name" (printf "%s-config" .fullname))) -}}
{{- end -}}
{{- $ls := .v.logShipper -}}
{{- if $ls.enabled -}}
{{- if $ls.stateDir.enabled -}}
{{- $out = append $out (merge (dict "name" "log-shipper-state") (deepCopy $ls.stateDir.volume)) -}}
{{- end -}}
{{- range $i, $sink := $ls.sinks -}}
{{- if $sink.bearerTokenSecret -}}
{{- $out = append $out (dict "name" (printf "log-shipper-sink-%d-token" (int $i)) "secret" (dict "secretName" $sink.bearerTokenSecret.name "items" (list (dict "key" $sink.bearerTokenSecret.key "path" $sink.bearerTokenSecret.key)))) -}}
{{- end -}}
{{- if $sink.basicAuth -}}
{{- $sec := $sink.basicAuth.passwordSecret -}}
{{- $out = append $out (dict "name" (printf "log-shipper-sink-%d-basic" (int $i)) "secret" (dict "secretName" $sec.name "items" (list (dict "key" $sec.key "path" $sec.key)))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $tr := .v.tailRewrite -}}
{{- if and $tr.enabled $tr.stateDir.enabled -}}
{{- $out = append $out (merge (dict "name" "tail-rewrite-state") (deepCopy $tr.stateDir.volume)) -}}
{{- end -}}
{{- $amb := .v.ambassador -}}
{{- if and $amb.enabled $amb.tls.secretName -}}
{{- $out = append $out (dict "name" "ambassador-tls" "secret" (dict "secretName" $amb.tls.secretName)) -}}
{{- end -}}
{{- if $out -}}
{{- toYaml $out -}}
{{- end -}}
{{- end -}}

{{/* The mount of the shared log volume for the app container. */}}
{{- define "podkit.impl.appVolumeMounts" -}}
{{- if include "podkit.logVolume.enabled" . -}}
{{- toYaml (list (dict "name" "podkit-logs" "mountPath" .v.logs.mountPath)) -}}
{{- end -}}
{{- end -}}

{{/* Pod annotations: the user's, plus the config checksum when asked for. */}}
{{- define "podkit.impl.podAnnotations" -}}
{{- $a := deepCopy (.v.podAnnotations | default dict) -}}
{{- if and .v.configFiles.rollOnChange (include "podkit.configMap.enabled" .) -}}
{{- $_ := set $a "checksum/podkit-config" (include "podkit.configMap.data" . | sha256sum) -}}
{{- end -}}
{{- if $a -}}
{{- toYaml $a -}}
{{- end -}}
{{- end -}}

{{/* Pod sysctls the helpers need (a port below 1024 as uid 65532). */}}
{{- define "podkit.impl.sysctls" -}}
{{- if include "podkit.lowPorts" . -}}
{{- toYaml (list (dict "name" "net.ipv4.ip_unprivileged_port_start" "value" "0")) -}}
{{- end -}}
{{- end -}}

{{/* Whether the pod needs the service account token ("true"/""). */}}
{{- define "podkit.impl.automountToken" -}}
{{- if or .v.serviceAccount.automountToken (include "podkit.waitFor.k8sTargets" . | fromYamlArray) -}}true{{- end -}}
{{- end -}}
