"""What an operator watches: Prometheus metrics, liveness and readiness probes, logs."""
