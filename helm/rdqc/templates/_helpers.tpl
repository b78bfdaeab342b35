{{- define "rdqc.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rdqc.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rdqc.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rdqc.image" -}}
{{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end -}}

{{/* The Secret the pods read credentials from: the operator's, or the one this chart makes. */}}
{{- define "rdqc.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-secrets" (include "rdqc.fullname" .)) -}}
{{- end -}}

{{/* PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, from kafka.sasl.enabled and kafka.tls.enabled. */}}
{{- define "rdqc.kafkaSecurityProtocol" -}}
{{- $transport := ternary "SSL" "PLAINTEXT" .Values.kafka.tls.enabled -}}
{{- ternary (printf "SASL_%s" $transport) $transport .Values.kafka.sasl.enabled -}}
{{- end -}}

{{- define "rdqc.kafkaCaMountDir" -}}/etc/rdqc/kafka-ca{{- end -}}
