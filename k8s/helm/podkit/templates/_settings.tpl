{{/*
Each helper's settings as one map of config-file keys (long flag names, and
the binaries' [[section]] tables). The same map becomes either the helper's
config file in the ConfigMap (configFile: true) or its flags
("podkit.flags"). Each template takes a scope and prints YAML.
*/}}

{{/* The environment variable a downward-API label is read from. */}}
{{- define "podkit.downwardEnv" -}}
{{- $known := dict "metadata.name" "POD_NAME" "metadata.namespace" "POD_NAMESPACE" "metadata.uid" "POD_UID" "spec.nodeName" "NODE_NAME" "status.podIP" "POD_IP" "status.hostIP" "HOST_IP" "spec.serviceAccountName" "SERVICE_ACCOUNT" -}}
{{- $field := index . 1 -}}
{{- if hasKey $known $field -}}
{{- index $known $field -}}
{{- else -}}
{{- printf "PODKIT_LABEL_%s" (index . 0 | upper | replace "-" "_" | replace "." "_") -}}
{{- end -}}
{{- end -}}

{{/* Where the secret of a sink is mounted: (list index kind). */}}
{{- define "podkit.sinkSecretDir" -}}
{{- printf "/var/run/secrets/podkit/log-shipper/sink-%d-%s" (int (index . 0)) (index . 1) -}}
{{- end -}}

{{- define "podkit.logShipper.settings" -}}
{{- $v := .v.logShipper -}}
{{- $s := dict "admin-addr" (printf "0.0.0.0:%d" (int $v.adminPort)) "grace-period" (include "podkit.duration" $v.gracePeriod) -}}
{{- if $v.follow -}}
{{- $_ := set $s "follow" $v.follow -}}
{{- end -}}
{{- if $v.stateDir.enabled -}}
{{- $_ := set $s "state-dir" $v.stateDir.path -}}
{{- else -}}
{{- $_ := set $s "no-checkpoint" true -}}
{{- end -}}
{{- $labels := list -}}
{{- range $k := keys ($v.labels | default dict) | sortAlpha -}}
{{- $labels = append $labels (printf "%s=%s" $k (toString (index $v.labels $k))) -}}
{{- end -}}
{{- if $labels -}}
{{- $_ := set $s "label" $labels -}}
{{- end -}}
{{- if $v.downwardLabels.enabled -}}
{{- $fromEnv := list -}}
{{- range $k := keys ($v.downwardLabels.fields | default dict) | sortAlpha -}}
{{- $fromEnv = append $fromEnv (printf "%s=%s" $k (include "podkit.downwardEnv" (list $k (index $v.downwardLabels.fields $k)))) -}}
{{- end -}}
{{- if $fromEnv -}}
{{- $_ := set $s "label-from-env" $fromEnv -}}
{{- end -}}
{{- end -}}
{{- if $v.serve.enabled -}}
{{- $_ := set $s "serve" (printf "0.0.0.0:%d" (int $v.serve.port)) -}}
{{- $_ := set $s "serve-root" ($v.serve.root | default .v.logs.mountPath) -}}
{{- end -}}
{{- $urls := list -}}
{{- $sections := list -}}
{{- range $i, $sink := $v.sinks -}}
{{- $url := "" -}}
{{- if eq $sink.type "stdout" -}}
{{- $url = "stdout" -}}
{{- else if eq $sink.type "file" -}}
{{- $url = printf "file://%s" $sink.path -}}
{{- else -}}
{{- $url = $sink.url -}}
{{- end -}}
{{- $urls = append $urls $url -}}
{{- $section := dict "url" $url -}}
{{- $extra := false -}}
{{- if $sink.name -}}
{{- $_ := set $section "name" $sink.name -}}
{{- $extra = true -}}
{{- end -}}
{{- if $sink.format -}}
{{- $_ := set $section "format" $sink.format -}}
{{- $extra = true -}}
{{- end -}}
{{- if $sink.bearerTokenSecret -}}
{{- $_ := set $section "bearer_token_file" (printf "%s/%s" (include "podkit.sinkSecretDir" (list $i "token")) $sink.bearerTokenSecret.key) -}}
{{- $extra = true -}}
{{- end -}}
{{- if $sink.basicAuth -}}
{{- $_ := set $section "basic_auth_user" $sink.basicAuth.user -}}
{{- $_ := set $section "basic_auth_password_file" (printf "%s/%s" (include "podkit.sinkSecretDir" (list $i "basic")) $sink.basicAuth.passwordSecret.key) -}}
{{- $extra = true -}}
{{- end -}}
{{- if $sink.options -}}
{{- $section = merge $section $sink.options -}}
{{- $extra = true -}}
{{- end -}}
{{- if and $extra (not $v.configFile) -}}
{{- fail (printf "logShipper.sinks[%d]: name, format, secrets and options are per-sink settings, which only log-shipper's config file carries: set logShipper.configFile=true" $i) -}}
{{- end -}}
{{- $sections = append $sections $section -}}
{{- end -}}
{{- if $v.configFile -}}
{{- $_ := set $s "sink" $sections -}}
{{- else -}}
{{- $_ := set $s "sink" $urls -}}
{{- end -}}
{{- toYaml (mergeOverwrite $s (deepCopy ($v.config | default dict))) -}}
{{- end -}}

{{- define "podkit.tailRewrite.settings" -}}
{{- $v := .v.tailRewrite -}}
{{- $s := dict "admin-addr" (printf "0.0.0.0:%d" (int $v.adminPort)) "grace-period" (include "podkit.duration" $v.gracePeriod) -}}
{{- $_ := set $s "follow" $v.follow -}}
{{- if $v.expressions -}}
{{- $_ := set $s "expression" $v.expressions -}}
{{- end -}}
{{- if $v.regexpExtended -}}
{{- $_ := set $s "regexp-extended" true -}}
{{- end -}}
{{- if ne $v.format "text" -}}
{{- $_ := set $s "format" $v.format -}}
{{- end -}}
{{- if $v.parse -}}
{{- $_ := set $s "parse" $v.parse -}}
{{- end -}}
{{- $fields := list -}}
{{- range $k := keys ($v.fields | default dict) | sortAlpha -}}
{{- $fields = append $fields (printf "%s=%s" $k (toString (index $v.fields $k))) -}}
{{- end -}}
{{- if $fields -}}
{{- $_ := set $s "field" $fields -}}
{{- end -}}
{{- if $v.output.path -}}
{{- $_ := set $s "output" $v.output.path -}}
{{- if $v.output.maxSize -}}
{{- $_ := set $s "output-max-size" $v.output.maxSize -}}
{{- $_ := set $s "output-keep" (int $v.output.keep) -}}
{{- end -}}
{{- end -}}
{{- if $v.stateDir.enabled -}}
{{- $_ := set $s "state-dir" $v.stateDir.path -}}
{{- else if not $v.output.path -}}
{{- $_ := set $s "no-checkpoint" true -}}
{{- end -}}
{{- toYaml (mergeOverwrite $s (deepCopy ($v.config | default dict))) -}}
{{- end -}}

{{- define "podkit.ambassador.settings" -}}
{{- $v := .v.ambassador -}}
{{- $s := dict "admin-addr" (printf "0.0.0.0:%d" (int $v.adminPort)) "grace-period" (include "podkit.duration" $v.gracePeriod) -}}
{{- $byMode := dict "tcp" (list) "reverse" (list) "http-forward" (list) -}}
{{- $allow := list -}}
{{- $sections := list -}}
{{- range $i, $l := $v.listeners -}}
{{- $listen := printf "%s:%d" ($l.address | default "127.0.0.1") (int $l.port) -}}
{{- if contains ":" ($l.address | default "") -}}
{{- $listen = printf "[%s]:%d" $l.address (int $l.port) -}}
{{- end -}}
{{- $ups := $l.upstreams | default list -}}
{{- $spec := $listen -}}
{{- if $ups -}}
{{- $spec = printf "%s=%s" $listen (join "," $ups) -}}
{{- end -}}
{{- $_ := set $byMode $l.mode (append (index $byMode $l.mode) $spec) -}}
{{- $allow = concat $allow ($l.allow | default list) -}}
{{- $section := dict "mode" $l.mode "listen" $listen -}}
{{- if $ups -}}
{{- $_ := set $section "upstreams" $ups -}}
{{- end -}}
{{- if $l.allow -}}
{{- $_ := set $section "allow" $l.allow -}}
{{- end -}}
{{- if $l.options -}}
{{- if not $v.configFile -}}
{{- fail (printf "ambassador.listeners[%d].options: per-listener options need the ambassador's config file: set ambassador.configFile=true" $i) -}}
{{- end -}}
{{- $section = merge $section $l.options -}}
{{- end -}}
{{- $sections = append $sections $section -}}
{{- end -}}
{{- if $v.configFile -}}
{{- if $sections -}}
{{- $_ := set $s "listener" $sections -}}
{{- end -}}
{{- else -}}
{{- range $mode := list "tcp" "reverse" "http-forward" -}}
{{- if index $byMode $mode -}}
{{- $_ := set $s $mode (index $byMode $mode) -}}
{{- end -}}
{{- end -}}
{{- if $allow -}}
{{- $_ := set $s "allow" (uniq $allow) -}}
{{- end -}}
{{- end -}}
{{- if $v.tls.secretName -}}
{{- if $v.tls.caKey -}}
{{- $_ := set $s "tls-ca-file" (printf "/etc/podkit/tls/ambassador/%s" $v.tls.caKey) -}}
{{- end -}}
{{- if $v.tls.certKey -}}
{{- $_ := set $s "tls-client-cert" (printf "/etc/podkit/tls/ambassador/%s" $v.tls.certKey) -}}
{{- end -}}
{{- if $v.tls.keyKey -}}
{{- $_ := set $s "tls-client-key" (printf "/etc/podkit/tls/ambassador/%s" $v.tls.keyKey) -}}
{{- end -}}
{{- end -}}
{{- if $v.tls.serverName -}}
{{- $_ := set $s "tls-server-name" $v.tls.serverName -}}
{{- end -}}
{{- toYaml (mergeOverwrite $s (deepCopy ($v.config | default dict))) -}}
{{- end -}}

{{/* wait-for takes no config file: its flags (targets come last). */}}
{{- define "podkit.waitFor.settings" -}}
{{- $v := .v.waitFor -}}
{{- $s := dict "timeout" (include "podkit.duration" $v.timeout) -}}
{{- if $v.any -}}
{{- $_ := set $s "any" true -}}
{{- end -}}
{{- if $v.adminPort -}}
{{- $_ := set $s "admin-addr" (printf "0.0.0.0:%d" (int $v.adminPort)) -}}
{{- end -}}
{{- toYaml $s -}}
{{- end -}}
