"""``rdqc doctor``: a preflight of settings, services, topics, paths, models and the device.

Each concern is a module of small checks returning rows (report.py); run.py runs them in
order. Nothing here changes what it checks: no topic, bucket or folder is created.
"""
