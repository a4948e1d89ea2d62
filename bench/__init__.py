"""Benchmarks for netstat-collect (issue 6): `python -m bench`, see bench/RESULTS.md.

Everything runs on 127.0.0.1 against simulated routers and temporary data
directories; nothing here reads config/routers.json or talks to a real network.
The collector and the API run as real processes (the CLI, gunicorn), measured
from outside: wall time, CPU and peak memory from wait4(), disk syncs from
strace, requests per second and latency from wrk or a small Python client.
"""
