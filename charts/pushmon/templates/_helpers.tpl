{{/*
The prefix of every object's name: the release name when it already says
pushmon (release "pushmon" gives the names config/default uses), else
"<release>-pushmon"; fullnameOverride replaces it.
*/}}
{{- define "pushmon.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pushmon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "pushmon.labels" -}}
app.kubernetes.io/name: {{ include "pushmon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: pushmon
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selects the pods of this release, controller and ingest alike. */}}
{{- define "pushmon.releaseSelector" -}}
app.kubernetes.io/name: {{ include "pushmon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selects the controller's pods (config/default's control-plane label). */}}
{{- define "pushmon.controllerSelector" -}}
{{ include "pushmon.releaseSelector" . }}
control-plane: controller-manager
{{- end -}}

{{/* Selects the ingest tier's pods. */}}
{{- define "pushmon.ingestSelector" -}}
{{ include "pushmon.releaseSelector" . }}
app.kubernetes.io/component: ingest
{{- end -}}

{{/* The pods behind the push Service: the ingest tier when it is on. */}}
{{- define "pushmon.pushSelector" -}}
{{- if .Values.ingest.enabled -}}
{{ include "pushmon.ingestSelector" . }}
{{- else -}}
{{ include "pushmon.controllerSelector" . }}
{{- end -}}
{{- end -}}

{{- define "pushmon.serviceAccountName" -}}
{{- default (printf "%s-controller-manager" (include "pushmon.fullname" .)) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "pushmon.ingestServiceAccountName" -}}
{{- default (printf "%s-ingest" (include "pushmon.fullname" .)) .Values.ingest.serviceAccount.name -}}
{{- end -}}

{{- define "pushmon.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "pushmon.webhookServiceName" -}}
{{ include "pushmon.fullname" . }}-webhook-service
{{- end -}}

{{- define "pushmon.webhookCertSecret" -}}
{{ .Values.webhook.certs.secretName | default (printf "%s-webhook-server-cert" (include "pushmon.fullname" .)) }}
{{- end -}}

{{- define "pushmon.certificateName" -}}
{{ include "pushmon.fullname" . }}-serving-cert
{{- end -}}

{{/*
Whether the manager issues its own webhook certificate
(--webhook-cert-mode=self): the chart then renders the empty Secret, the
by-name RBAC on it and on the two webhook configurations, and the flags
naming them.
*/}}
{{- define "pushmon.selfCert" -}}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certs.mode "self") -}}
true
{{- end -}}
{{- end -}}

{{- define "pushmon.mutatingWebhookName" -}}
{{ include "pushmon.fullname" . }}-mutating-webhook-configuration
{{- end -}}

{{- define "pushmon.validatingWebhookName" -}}
{{ include "pushmon.fullname" . }}-validating-webhook-configuration
{{- end -}}

{{/* Whether the chart writes a cert-manager Certificate for the webhooks. */}}
{{- define "pushmon.certManager" -}}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certs.mode "cert-manager") .Values.webhook.certManager.enabled -}}
true
{{- end -}}
{{- end -}}

{{/*
The base URL written into each monitor's Secret: push.baseURL, else the
address the chart exposes (Ingress host, then the HTTPRoute's first
hostname), else the push Service's in-cluster DNS name.
*/}}
{{- define "pushmon.pushBaseURL" -}}
{{- if .Values.push.baseURL -}}
{{ .Values.push.baseURL }}
{{- else if .Values.ingress.enabled -}}
{{ ternary "https" "http" .Values.ingress.tls.enabled }}://{{ .Values.ingress.host }}
{{- else if .Values.httpRoute.enabled -}}
{{ .Values.httpRoute.scheme }}://{{ first .Values.httpRoute.hostnames }}
{{- else -}}
http://{{ include "pushmon.fullname" . }}-push.{{ .Release.Namespace }}.svc:{{ .Values.push.service.port }}
{{- end -}}
{{- end -}}

{{/*
Whether the push endpoint believes a proxy's client-address header:
push.clientIP.enabled when set, else on exactly when the chart exposes the
endpoint through an Ingress or an HTTPRoute.
*/}}
{{- define "pushmon.proxyHeader" -}}
{{- $on := or .Values.ingress.enabled .Values.httpRoute.enabled -}}
{{- if not (kindIs "invalid" .Values.push.clientIP.enabled) -}}
{{- $on = .Values.push.clientIP.enabled -}}
{{- end -}}
{{- if $on -}}
{{- if not .Values.push.clientIP.trustedProxies -}}
{{- fail "push.clientIP: the client-address header is on (Ingress or HTTPRoute enabled) but push.clientIP.trustedProxies is empty; list your ingress controller's or gateway's pod CIDRs, or set push.clientIP.enabled=false" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The push endpoint's flags, shared by the controller and the ingest tier. */}}
{{- define "pushmon.pushArgs" -}}
- --push-bind-address=:8082
- --push-base-url={{ include "pushmon.pushBaseURL" . }}
{{- if include "pushmon.proxyHeader" . }}
- --push-client-ip-header={{ .Values.push.clientIP.header }}
- --push-trusted-proxies={{ join "," .Values.push.clientIP.trustedProxies }}
{{- end }}
{{- end -}}
