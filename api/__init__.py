"""The read-only JSON API over the collector's databases: `api.app:create_app()` under gunicorn.

It only ever reads (collector.reads opens every file with `mode=ro`) and never
imports the collector's write path.
"""
