"""rdqc worker: the streaming quality-control service."""
