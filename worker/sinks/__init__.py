"""Sinks: where scores, heatmaps and dead letters go (Redis, S3, Kafka, local files)."""
