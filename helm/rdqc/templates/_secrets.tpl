{{/* Secret data from secrets.*, under the env names the worker reads; empty values left out. */}}
{{- define "rdqc.kafkaSecretData" -}}
{{- $data := dict -}}
{{- if .Values.kafka.sasl.enabled -}}
{{- $_ := set $data "RDQC_KAFKA__SASL_USERNAME" .Values.secrets.kafkaSaslUsername -}}
{{- $_ := set $data "RDQC_KAFKA__SASL_PASSWORD" .Values.secrets.kafkaSaslPassword -}}
{{- end -}}
{{- if $data }}{{ toYaml $data }}{{ end -}}
{{- end -}}

{{- define "rdqc.secretData" -}}
{{- $data := include "rdqc.kafkaSecretData" . | fromYaml -}}
{{- $secrets := .Values.secrets -}}
{{- $others := dict "RDQC_REDIS__URL" $secrets.redisUrl "RDQC_S3__ACCESS_KEY" $secrets.s3AccessKey "RDQC_S3__SECRET_KEY" $secrets.s3SecretKey -}}
{{- range $name, $value := $others }}
{{- if $value }}{{ $_ := set $data $name $value }}{{ end }}
{{- end -}}
{{- if $data }}{{ toYaml $data }}{{ end -}}
{{- end -}}
