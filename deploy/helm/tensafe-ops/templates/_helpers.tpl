{{/*
Expand the name of the chart.
*/}}
{{- define "tensafe-ops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A default fully qualified app name, truncated at 63 characters (DNS names). A release name
that already contains the chart name is used as it is.
*/}}
{{- define "tensafe-ops.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "tensafe-ops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "tensafe-ops.labels" -}}
helm.sh/chart: {{ include "tensafe-ops.chart" . }}
{{ include "tensafe-ops.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tensafe-ops
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "tensafe-ops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tensafe-ops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels and selector labels of one workload: (dict "root" $ "component" "exporter").
The component is all (singleProcess), exporter or webhook; it is also the process's role.
*/}}
{{- define "tensafe-ops.componentLabels" -}}
{{ include "tensafe-ops.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tensafe-ops.componentSelectorLabels" -}}
{{ include "tensafe-ops.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
The workloads this release runs, as a JSON list: ["all"] in singleProcess mode, otherwise
the enabled ones of ["exporter", "webhook"].
*/}}
{{- define "tensafe-ops.components" -}}
{{- $components := list }}
{{- if .Values.singleProcess.enabled }}
{{- $components = list "all" }}
{{- else }}
{{- if .Values.exporter.enabled }}{{ $components = append $components "exporter" }}{{ end }}
{{- if .Values.webhook.enabled }}{{ $components = append $components "webhook" }}{{ end }}
{{- end }}
{{- toJson $components }}
{{- end }}

{{/*
The values block of a workload: singleProcess for "all", else exporter or webhook.
*/}}
{{- define "tensafe-ops.block" -}}
{{- toYaml (index .root.Values (ternary "singleProcess" .component (eq .component "all"))) }}
{{- end }}

{{/*
Name of a workload's objects: <fullname> in singleProcess mode, <fullname>-<component> otherwise.
*/}}
{{- define "tensafe-ops.componentName" -}}
{{- if eq .component "all" }}
{{- include "tensafe-ops.fullname" .root }}
{{- else }}
{{- printf "%s-%s" (include "tensafe-ops.fullname" .root | trunc 54 | trimSuffix "-") .component }}
{{- end }}
{{- end }}

{{/*
The container image.
*/}}
{{- define "tensafe-ops.image" -}}
{{- with .Values.image.registry }}{{ . }}/{{ end }}
{{- .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- with .Values.image.digest }}@{{ . }}{{ end }}
{{- end }}

{{- define "tensafe-ops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tensafe-ops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret holding the tokens: the one the chart creates, or secrets.existingSecret.
*/}}
{{- define "tensafe-ops.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "tensafe-ops.fullname" .) }}
{{- end }}

{{/*
The key in that Secret for one of the chart's secret names (secrets.keys maps them for an
existing Secret whose keys are named otherwise).
*/}}
{{- define "tensafe-ops.secretKey" -}}
{{- $name := .name }}
{{- if .root.Values.secrets.existingSecret }}
{{- index .root.Values.secrets.keys $name | default $name }}
{{- else }}
{{- $name }}
{{- end }}
{{- end }}

{{/*
Does this workload keep its state in PostgreSQL? "true" or "".
*/}}
{{- define "tensafe-ops.usesPostgresql" -}}
{{- $block := include "tensafe-ops.block" . | fromYaml }}
{{- if eq $block.database "postgresql" }}true{{ end }}
{{- end }}

{{/*
The tensafe-ops configuration of one workload, as a YAML document: the server section the
chart owns, and the exporter and/or webhook sections from .Values.config. A string
"!secret NAME" anywhere becomes `!file /etc/tensafe-ops/secrets/NAME` (the Secret's key,
mounted read-only); "!env VAR" becomes the config's own `!env VAR` tag.
*/}}
{{- define "tensafe-ops.configDocument" -}}
{{- $v := .root.Values }}
{{- $server := dict "role" .component "host" "0.0.0.0" "port" ($v.service.port | int) "state_dir" "/var/lib/tensafe-ops" "log_format" $v.config.logFormat }}
{{- if include "tensafe-ops.usesPostgresql" . }}
{{- $_ := set $server "state_db_url" (printf "!secret %s" $v.postgresql.urlSecretKey) }}
{{- end }}
{{- $document := dict "server" $server }}
{{- if has .component (list "all" "exporter") }}
{{- $_ := set $document "exporter" $v.config.exporter }}
{{- end }}
{{- if and (has .component (list "all" "webhook")) $v.webhook.enabled }}
{{- $_ := set $document "webhook" (merge (dict "enabled" true) $v.config.webhook) }}
{{- end }}
{{- toYaml $document }}
{{- end }}

{{- define "tensafe-ops.config" -}}
{{- $text := include "tensafe-ops.configDocument" . }}
{{- $text = regexReplaceAll "['\"]!secret ([-._a-zA-Z0-9]+)['\"]" $text "!file /etc/tensafe-ops/secrets/${1}" }}
{{- regexReplaceAll "['\"](!env [A-Za-z_][A-Za-z0-9_]*)['\"]" $text "${1}" }}
{{- end }}

{{/*
The secret names a workload's configuration references, as a JSON list (sorted, unique).
*/}}
{{- define "tensafe-ops.secretNames" -}}
{{- $names := list }}
{{- range regexFindAll "['\"]!secret [-._a-zA-Z0-9]+['\"]" (include "tensafe-ops.configDocument" .) -1 }}
{{- $names = append $names (. | trimAll "'\"" | trimPrefix "!secret ") }}
{{- end }}
{{- $names | uniq | sortAlpha | toJson }}
{{- end }}

{{/*
The same, after checking that a Secret the chart creates holds every name any workload uses
(one message naming all that are missing).
*/}}
{{- define "tensafe-ops.secretRefs" -}}
{{- if not .root.Values.secrets.existingSecret }}
{{- $missing := list }}
{{- range $component := include "tensafe-ops.components" .root | fromJsonArray }}
{{- range include "tensafe-ops.secretNames" (dict "root" $.root "component" $component) | fromJsonArray }}
{{- if not (hasKey $.root.Values.secrets.values .) }}{{ $missing = append $missing . }}{{ end }}
{{- end }}
{{- end }}
{{- with $missing | uniq | sortAlpha }}
{{- fail (printf "the configuration references secrets that secrets.values lacks: %s. Set each (e.g. --set-file secrets.values.%s=PATH), or name a Secret you manage in secrets.existingSecret" (join ", " .) (first .)) }}
{{- end }}
{{- end }}
{{- include "tensafe-ops.secretNames" . }}
{{- end }}

{{/*
Refuse what cannot work, with the fix in the message.
*/}}
{{- define "tensafe-ops.validate" -}}
{{- $v := .Values }}
{{- if and $v.secrets.existingSecret $v.secrets.values }}
{{- fail "secrets.values and secrets.existingSecret are both set: the chart either creates the Secret from secrets.values or uses yours, not both" }}
{{- end }}
{{- if not (include "tensafe-ops.components" . | fromJsonArray) }}
{{- fail "nothing to run: enable singleProcess, exporter or webhook" }}
{{- end }}
{{- if and (not $v.singleProcess.enabled) $v.webhook.enabled (ne $v.webhook.database "postgresql") }}
{{- if or (gt (int $v.webhook.replicaCount) 1) $v.webhook.autoscaling.enabled }}
{{- fail (printf "webhook.replicaCount is %d (autoscaling %v) but webhook.database is %s: several webhook replicas need PostgreSQL (webhook.database: postgresql and the URL in the secret %s); with SQLite run one replica" (int $v.webhook.replicaCount) $v.webhook.autoscaling.enabled $v.webhook.database $v.postgresql.urlSecretKey) }}
{{- end }}
{{- end }}
{{- end }}
