"""Frame sources: where polled records come from (Kafka, a local directory)."""
