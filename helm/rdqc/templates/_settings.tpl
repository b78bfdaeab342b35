{{/* The worker's settings (worker/settings.py), as the env its containers get. */}}
{{- define "rdqc.chartSettingsEnv" -}}
{{- $v := .Values -}}
RDQC_SOURCE: {{ $v.backends.source | quote }}
RDQC_MODELS: {{ $v.backends.models | quote }}
RDQC_SCORES: {{ $v.backends.scores | quote }}
RDQC_HEATMAPS: {{ $v.backends.heatmaps | quote }}
RDQC_HEATMAPS_FOR: {{ $v.backends.heatmapsFor | quote }}
{{- with $v.backends.deadLetterPayloads }}
RDQC_DEAD_LETTER_PAYLOADS: {{ . | quote }}
{{- end }}
RDQC_MAX_PAYLOAD_BYTES: {{ $v.frames.maxPayloadBytes | int64 | quote }}
RDQC_MIN_DIMENSION: {{ $v.frames.minDimension | int64 | quote }}
RDQC_MAX_DIMENSION: {{ $v.frames.maxDimension | int64 | quote }}
RDQC_MAX_PIXELS: {{ $v.frames.maxPixels | int64 | quote }}
RDQC_DECODE_THREADS: {{ $v.frames.decodeThreads | int64 | quote }}
RDQC_DEVICE: {{ $v.inference.device | quote }}
RDQC_PRECISION: {{ $v.inference.precision | quote }}
RDQC_CHANNELS_LAST: {{ $v.inference.channelsLast | quote }}
RDQC_METRICS_PORT: {{ $v.ports.metrics | int64 | quote }}
RDQC_HEALTH_PORT: {{ $v.ports.health | int64 | quote }}
RDQC_SHUTDOWN_GRACE_S: {{ $v.shutdownGraceSeconds | quote }}
RDQC_LOG_FORMAT: {{ $v.logFormat | quote }}
RDQC_LOG_LEVEL: {{ $v.logLevel | quote }}
RDQC_KAFKA__BOOTSTRAP_SERVERS: {{ $v.kafka.bootstrapServers | quote }}
RDQC_KAFKA__TOPIC: {{ $v.kafka.topic | quote }}
RDQC_KAFKA__DLQ_TOPIC: {{ $v.kafka.dlqTopic | quote }}
RDQC_KAFKA__GROUP_ID: {{ $v.kafka.groupId | quote }}
RDQC_KAFKA__CLIENT_ID: {{ $v.kafka.clientId | quote }}
RDQC_KAFKA__MAX_POLL_RECORDS: {{ $v.kafka.maxPollRecords | int64 | quote }}
RDQC_KAFKA__MAX_POLL_INTERVAL_MS: {{ $v.kafka.maxPollIntervalMs | int64 | quote }}
RDQC_KAFKA__SESSION_TIMEOUT_MS: {{ $v.kafka.sessionTimeoutMs | int64 | quote }}
RDQC_KAFKA__FETCH_MAX_MB: {{ $v.kafka.fetchMaxMb | int64 | quote }}
RDQC_KAFKA__MAX_PARTITION_FETCH_MB: {{ $v.kafka.maxPartitionFetchMb | int64 | quote }}
RDQC_KAFKA__DLQ_DELIVERY_TIMEOUT_S: {{ $v.kafka.dlqDeliveryTimeoutSeconds | quote }}
RDQC_KAFKA__DLQ_SEND_TIMEOUT_S: {{ $v.kafka.dlqSendTimeoutSeconds | quote }}
RDQC_KAFKA__DLQ_MAX_RECORD_BYTES: {{ $v.kafka.dlqMaxRecordBytes | int64 | quote }}
RDQC_KAFKA__SECURITY_PROTOCOL: {{ include "rdqc.kafkaSecurityProtocol" . | quote }}
{{- if $v.kafka.sasl.enabled }}
RDQC_KAFKA__SASL_MECHANISM: {{ $v.kafka.sasl.mechanism | quote }}
{{- end }}
{{- if and $v.kafka.tls.enabled $v.kafka.tls.caSecret.name }}
RDQC_KAFKA__SSL_CAFILE: {{ printf "%s/%s" (include "rdqc.kafkaCaMountDir" .) $v.kafka.tls.caSecret.key | quote }}
{{- end }}
RDQC_TOPICS__PARTITIONS: {{ $v.topics.partitions | int64 | quote }}
RDQC_TOPICS__REPLICATION_FACTOR: {{ $v.topics.replicationFactor | int64 | quote }}
RDQC_TOPICS__INBOUND_RETENTION_HOURS: {{ $v.topics.inboundRetentionHours | int64 | quote }}
RDQC_TOPICS__DLQ_RETENTION_HOURS: {{ $v.topics.dlqRetentionHours | int64 | quote }}
RDQC_REDIS__PREFIX: {{ $v.redis.prefix | quote }}
RDQC_REDIS__TTL_S: {{ $v.redis.ttlSeconds | int64 | quote }}
RDQC_REDIS__STREAM_MAXLEN: {{ $v.redis.streamMaxlen | int64 | quote }}
RDQC_REDIS__FLAGGED_MAXLEN: {{ $v.redis.flaggedMaxlen | int64 | quote }}
RDQC_REDIS__CONNECT_TIMEOUT_S: {{ $v.redis.connectTimeoutSeconds | quote }}
RDQC_REDIS__SOCKET_TIMEOUT_S: {{ $v.redis.socketTimeoutSeconds | quote }}
RDQC_S3__ENDPOINT: {{ $v.s3.endpoint | quote }}
RDQC_S3__REGION: {{ $v.s3.region | quote }}
RDQC_S3__HEATMAP_BUCKET: {{ $v.s3.heatmapBucket | quote }}
RDQC_S3__MODEL_BUCKET: {{ $v.s3.modelBucket | quote }}
RDQC_S3__CONNECT_TIMEOUT_S: {{ $v.s3.connectTimeoutSeconds | quote }}
RDQC_S3__READ_TIMEOUT_S: {{ $v.s3.readTimeoutSeconds | quote }}
RDQC_S3__FLUSH_TIMEOUT_S: {{ $v.s3.flushTimeoutSeconds | quote }}
RDQC_BATCHING__MAX_SIZE: {{ $v.batching.maxSize | int64 | quote }}
RDQC_BATCHING__MAX_WAIT_MS: {{ $v.batching.maxWaitMs | quote }}
RDQC_BATCHING__MAX_QUEUE: {{ $v.batching.maxQueue | int64 | quote }}
RDQC_BATCHING__MAX_INFLIGHT_MB: {{ $v.batching.maxInflightMb | int64 | quote }}
RDQC_MODELS__POLL_S: {{ $v.models.pollSeconds | quote }}
RDQC_MODELS__MAX_RESIDENT: {{ $v.models.maxResident | int64 | quote }}
RDQC_MODELS__WARMUP: {{ $v.models.warmup | quote }}
RDQC_MODELS__CACHE_DIR: "/var/cache/rdqc/models"
RDQC_HEARTBEAT__INTERVAL_S: {{ $v.heartbeat.intervalSeconds | quote }}
RDQC_HEARTBEAT__TTL_S: {{ $v.heartbeat.ttlSeconds | quote }}
RDQC_SHADOW__ENABLED: {{ $v.shadow.enabled | quote }}
RDQC_SHADOW__MAX_SHARE: {{ $v.shadow.maxShare | quote }}
{{- end -}}

{{/*
Every non-secret setting, as RDQC_* env names to string values: the chart's, then extraEnv,
which may override them. The ConfigMap is made of it, and the topics hook Job, which runs
before the ConfigMap exists, renders it inline as env.
*/}}
{{- define "rdqc.settingsEnv" -}}
{{- $env := include "rdqc.chartSettingsEnv" . | fromYaml -}}
{{- range $name, $value := .Values.extraEnv }}
{{- $_ := set $env $name (toString $value) }}
{{- end }}
{{- toYaml $env }}
{{- end -}}
