{{/* KEDA talks to Kafka itself: it needs a TriggerAuthentication for SASL or a private CA. */}}
{{- define "rdqc.kedaNeedsAuth" -}}
{{- if or .Values.kafka.sasl.enabled (and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret.name) -}}
true
{{- end -}}
{{- end -}}

{{/* KEDA's names for the worker's SASL mechanisms. */}}
{{- define "rdqc.kedaSasl" -}}
{{- $names := dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" -}}
{{- get $names .Values.kafka.sasl.mechanism -}}
{{- end -}}
