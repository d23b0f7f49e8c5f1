{{/* Names, labels and the pieces shared by several templates. */}}

{{- define "verity.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every namespaced object: the release name when it already contains the chart name,
else `<release>-<chart>`. 52 characters leave room for the longest suffix ("-selfsigned-ca").
*/}}
{{- define "verity.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "verity.selectorLabels" -}}
app.kubernetes.io/name: {{ include "verity.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "verity.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "verity.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: verity
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "verity.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "verity.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The webhook Service (443 → https) and the admin Service. */}}
{{- define "verity.serviceName" -}}
{{- include "verity.fullname" . }}
{{- end }}

{{- define "verity.metricsServiceName" -}}
{{- printf "%s-metrics" (include "verity.fullname" .) }}
{{- end }}

{{/* The DNS names the API server uses to reach the webhook Service. */}}
{{- define "verity.serviceDNSNames" -}}
{{- $svc := include "verity.serviceName" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/* The Secret holding tls.crt and tls.key. */}}
{{- define "verity.tlsSecretName" -}}
{{- if eq .Values.tls.mode "external" }}
{{- required "tls.external.secretName is required when tls.mode is external" .Values.tls.external.secretName }}
{{- else }}
{{- printf "%s-tls" (include "verity.fullname" .) }}
{{- end }}
{{- end }}

{{/* The cert-manager Certificate whose CA is injected into the webhook configurations. */}}
{{- define "verity.certificateName" -}}
{{- printf "%s-tls" (include "verity.fullname" .) }}
{{- end }}

{{- define "verity.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Annotations of the three webhook configurations, as a YAML map: cert-manager's CA injection
and the user's.
*/}}
{{- define "verity.webhookAnnotations" -}}
{{- $annotations := dict }}
{{- if eq .Values.tls.mode "cert-manager" }}
{{- $_ := set $annotations "cert-manager.io/inject-ca-from" (printf "%s/%s" .Release.Namespace (include "verity.certificateName" .)) }}
{{- end }}
{{- toYaml (merge $annotations .Values.webhook.annotations) }}
{{- end }}

{{/*
clientConfig of one webhook. Call with (dict "root" $ "path" "/validate" "caBundle" $caBundle).
*/}}
{{- define "verity.clientConfig" -}}
{{- $root := .root }}
clientConfig:
  {{- if $root.Values.webhook.url }}
  url: {{ printf "%s%s" (trimSuffix "/" $root.Values.webhook.url) .path | quote }}
  {{- else }}
  service:
    name: {{ include "verity.serviceName" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: {{ .path }}
    port: 443
  {{- end }}
  {{- with .caBundle }}
  caBundle: {{ . }}
  {{- end }}
{{- end }}

{{/*
Namespace selector of both policy.sigstore.dev webhooks: an explicit one, cluster-wide with
exclusions, or policy-controller's opt-in label.
*/}}
{{- define "verity.namespaceSelector" -}}
{{- if .Values.webhook.namespaceSelector }}
{{- toYaml .Values.webhook.namespaceSelector }}
{{- else if .Values.webhook.clusterWide.enabled }}
{{- $excluded := concat (list .Release.Namespace) .Values.webhook.clusterWide.excludeNamespaces | uniq }}
matchExpressions:
  - key: policy.sigstore.dev/include
    operator: NotIn
    values: ["false"]
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ toJson $excluded }}
{{- else }}
matchExpressions:
  - key: policy.sigstore.dev/include
    operator: In
    values: ["true"]
{{- end }}
{{- end }}

{{/*
Name of cluster-scoped RBAC objects: the namespace is part of it, so releases of the same name
in two namespaces do not collide.
*/}}
{{- define "verity.clusterRoleName" -}}
{{- printf "%s-%s" (include "verity.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* `--registry-ca` entries: HOST=FILE for each mounted CA bundle, comma-separated. */}}
{{- define "verity.registryCAs" -}}
{{- $entries := list }}
{{- range $i, $ca := .Values.registry.caBundles }}
{{- $entries = append $entries (printf "%s=/etc/verity/registry-ca/%d/%s" $ca.host $i $ca.key) }}
{{- end }}
{{- join "," $entries }}
{{- end }}
