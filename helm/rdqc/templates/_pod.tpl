{{/* What the worker pod's containers share: env sources, volumes, resources. */}}
{{/* envFrom for every container of the worker pod: the ConfigMap, then the Secret. */}}
{{- define "rdqc.envFrom" -}}
- configMapRef:
    name: {{ include "rdqc.fullname" . }}
- secretRef:
    name: {{ include "rdqc.secretName" . }}
{{- end -}}

{{- define "rdqc.volumeMounts" -}}
- name: model-cache
  mountPath: /var/cache/rdqc
- name: tmp
  mountPath: /tmp
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: {{ include "rdqc.kafkaCaMountDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "rdqc.volumes" -}}
- name: model-cache
  emptyDir:
    sizeLimit: {{ .Values.modelCache.sizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmp.sizeLimit }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret.name }}
    items:
      - key: {{ .Values.kafka.tls.caSecret.key }}
        path: {{ .Values.kafka.tls.caSecret.key }}
{{- end }}
{{- end -}}

{{/* The worker's resources, with the GPU limit added when gpu.enabled. */}}
{{- define "rdqc.resources" -}}
{{- $resources := deepCopy .Values.resources -}}
{{- if .Values.gpu.enabled -}}
{{- $limits := get $resources "limits" | default dict -}}
{{- $_ := set $limits "nvidia.com/gpu" (int .Values.gpu.count) -}}
{{- $_ := set $resources "limits" $limits -}}
{{- end -}}
{{- toYaml $resources -}}
{{- end -}}
