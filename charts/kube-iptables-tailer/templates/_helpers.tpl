{{/* The app's name: app.kubernetes.io/name, and the full name's default suffix. */}}
{{- define "kit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Object names. A release named like the chart keeps the bare name, so the default release
(kube-iptables-tailer) names its objects as manifests/ does.
*/}}
{{- define "kit.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "kit.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The DaemonSet's selector, immutable once created: the name label alone, as in manifests/, so one
release per namespace.
*/}}
{{- define "kit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kit.name" . }}
{{- end }}

{{- define "kit.labels" -}}
{{ include "kit.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
metadata.labels and, when any, metadata.annotations of every object: called with
(list $ labels annotations), the object's own, to which commonLabels and commonAnnotations are added.
*/}}
{{- define "kit.metadata" -}}
{{- $root := index . 0 }}
{{- $annotations := merge (dict) (index . 2) $root.Values.commonAnnotations -}}
labels:
  {{- include "kit.labels" $root | nindent 2 }}
  {{- with index . 1 }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "kit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kit.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: the name of an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}
