"""The Django project that bench/http_bench.py serves under gunicorn and uvicorn: the store's API beside a bare DRF view."""
