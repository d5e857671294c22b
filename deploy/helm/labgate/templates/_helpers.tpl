{{/*
Names, labels, the image, and labgate's configuration as the chart completes it.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "labgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every object: fullnameOverride, else <release>-<name> (the release name
alone when it already contains the name). 63 characters at most (DNS labels).
*/}}
{{- define "labgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* <chart>-<version>, for the helm.sh/chart label. */}}
{{- define "labgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image tag: image.tag, else the chart's appVersion. */}}
{{- define "labgate.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "labgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "labgate.tag" .) }}
{{- end }}
{{- end }}

{{/* The pods' selector labels: they never change over a release's life. */}}
{{- define "labgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "labgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The labels of every object. */}}
{{- define "labgate.labels" -}}
helm.sh/chart: {{ include "labgate.chart" . }}
{{ include "labgate.selectorLabels" . }}
app.kubernetes.io/version: {{ include "labgate.tag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: {{ .Values.mode }}
app.kubernetes.io/part-of: {{ .Values.partOf | default .Chart.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "labgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "labgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret mounted at /secrets: existingSecret, or the one the chart creates. */}}
{{- define "labgate.secretName" -}}
{{- .Values.existingSecret | default (include "labgate.fullname" .) }}
{{- end }}

{{/* Where the Secret is mounted. */}}
{{- define "labgate.secretDir" -}}/secrets{{- end }}

{{/* "true" when the Secret holds redis-password. */}}
{{- define "labgate.hasRedisPassword" -}}
{{- if .Values.existingSecret }}{{ if .Values.existingSecretKeys.redisPassword }}true{{ end }}
{{- else if .Values.secrets.redisPassword }}true{{ end }}
{{- end }}

{{/* "true" when the Secret holds webhook-secret. */}}
{{- define "labgate.hasWebhookSecret" -}}
{{- if .Values.existingSecret }}{{ if .Values.existingSecretKeys.webhookSecret }}true{{ end }}
{{- else if .Values.secrets.webhookSecret }}true{{ end }}
{{- end }}

{{/* The replicas the Deployment may run: more than one with autoscaling. */}}
{{- define "labgate.manyReplicas" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/* The replicas the Deployment always runs: more than one (a PDB may then keep one). */}}
{{- define "labgate.alwaysMany" -}}
{{- if .Values.autoscaling.enabled }}{{ if gt (int .Values.autoscaling.minReplicas) 1 }}true{{ end }}
{{- else if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/*
Refuses values that would deploy something broken or leak a secret, naming the value
and the fix. Included by the Deployment.
*/}}
{{- define "labgate.validate" -}}
{{- $config := .Values.config | default dict }}
{{- $sections := dict "gitlab" (list "client_secret" "webhook_secret") "session" (list "cookie_secret" "redis_password") }}
{{- range $section, $keys := $sections }}
{{- $table := get $config $section | default dict }}
{{- range $keys }}
{{- if hasKey $table . }}
{{- fail (printf "config.%s.%s: a secret does not belong in the ConfigMap; put it in the Secret (secrets, or existingSecret) and the chart names its file in %s_file" $section . .) }}
{{- end }}
{{- end }}
{{- end }}
{{- $server := get $config "server" | default dict }}
{{- if hasKey $server "listen" }}
{{- fail "config.server.listen is set by the chart from containerPort: set containerPort instead" }}
{{- end }}
{{- if hasKey $server "metrics_listen" }}
{{- fail "config.server.metrics_listen is set by the chart from metrics.port (with metrics.enabled): set those instead" }}
{{- end }}
{{- $session := get $config "session" | default dict }}
{{- $urls := list (get $session "redis_url" | default "") }}
{{- $urls = concat $urls (get $session "redis_cluster_nodes" | default list) (get $session "redis_sentinel_nodes" | default list) }}
{{- range $urls }}
{{- if regexMatch "://[^/@]*:[^/@]*@" (toString .) }}
{{- fail "config.session: a Redis URL carries a password, which would sit in the ConfigMap: give it as secrets.redisPassword (or existingSecretKeys.redisPassword) instead" }}
{{- end }}
{{- end }}
{{- if and (include "labgate.manyReplicas" .) (ne (get $session "store" | default "cookie") "redis") }}
{{- fail "replicaCount > 1 and autoscaling need config.session.store: redis (with the cookie store two replicas could both spend one session's single-use GitLab refresh token); see examples/redis.yaml" }}
{{- end }}
{{- if and (eq .Values.mode "sidecar") (not .Values.sidecar.app.image) }}
{{- fail "mode sidecar needs sidecar.app.image: the app labgate protects, in the same pod" }}
{{- end }}
{{- if not .Values.existingSecret }}
{{- range $key := list "clientSecret" "cookieSecret" "signingKey" }}
{{- if not (get $.Values.secrets $key) }}
{{- fail (printf "secrets.%s is empty: give it (labgate keygen makes the cookie secret and the signing key), or create a Secret and name it in existingSecret" $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
labgate's configuration: .Values.config completed with what the chart sets (listeners,
the upstream, the Secret's files), as a dict. Keys the user set win, except the listeners
(refused by labgate.validate).
*/}}
{{- define "labgate.config" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $dir := include "labgate.secretDir" . }}
{{- $server := get $config "server" | default dict }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) }}
{{- if .Values.metrics.enabled }}
{{- $_ := set $server "metrics_listen" (printf "0.0.0.0:%d" (int .Values.metrics.port)) }}
{{- end }}
{{- $_ := set $config "server" $server }}
{{- /* One upstream table without a url (a timeout set, say): the chart's url. */}}
{{- $upstream := get $config "upstream" | default dict }}
{{- if and (kindIs "map" $upstream) (not (hasKey $upstream "url")) }}
{{- if eq .Values.mode "sidecar" }}
{{- $_ := set $upstream "url" (printf "http://127.0.0.1:%d" (int .Values.sidecar.app.port)) }}
{{- else }}
{{- $_ := set $upstream "url" "http://127.0.0.1:9" }}
{{- end }}
{{- $_ := set $config "upstream" $upstream }}
{{- end }}
{{- $gitlab := get $config "gitlab" | default dict }}
{{- $_ := set $gitlab "client_secret_file" (get $gitlab "client_secret_file" | default (printf "%s/client-secret" $dir)) }}
{{- if include "labgate.hasWebhookSecret" . }}
{{- $_ := set $gitlab "webhook_secret_file" (get $gitlab "webhook_secret_file" | default (printf "%s/webhook-secret" $dir)) }}
{{- end }}
{{- $_ := set $config "gitlab" $gitlab }}
{{- $session := get $config "session" | default dict }}
{{- $_ := set $session "cookie_secret_file" (get $session "cookie_secret_file" | default (printf "%s/cookie-secret" $dir)) }}
{{- if include "labgate.hasRedisPassword" . }}
{{- $_ := set $session "redis_password_file" (get $session "redis_password_file" | default (printf "%s/redis-password" $dir)) }}
{{- end }}
{{- $_ := set $config "session" $session }}
{{- $identity := get $config "identity" | default dict }}
{{- if not (get $identity "signing_key_files") }}
{{- $_ := set $identity "signing_key_files" (list (printf "%s/signing-key.pem" $dir)) }}
{{- end }}
{{- $_ := set $config "identity" $identity }}
{{- toJson $config }}
{{- end }}
