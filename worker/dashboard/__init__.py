"""``rdqc dashboard``: a read-only web view of the line, over the documented contracts only.

Data comes through the readers in ``ports`` (Redis + object storage, or the embedded JSON-lines
scores and heatmap folder), the model registry and the heartbeat stores; ``app`` builds the
Starlette application (JSON API, server-sent events, HTML views) over them. Nothing here
writes to Redis or storage.
"""
