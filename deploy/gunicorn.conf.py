# Example gunicorn configuration for one mosplatform app server, for running gunicorn
# directly (`gunicorn -c deploy/gunicorn.conf.py "mosplatform:create_app()"`) instead of
# `mosplatform serve`, which applies the same settings from MOSPLATFORM_SERVE_* (see
# mosplatform/serving.py). Database and media come from the environment:
#   MOSPLATFORM_DATABASE_URL=postgresql://mos@127.0.0.1/mosplatform
#   MOSPLATFORM_INSTANCE_PATH=/srv/mosplatform/instance
#   MOSPLATFORM_USE_X_ACCEL_REDIRECT=true
import multiprocessing
import os

from mosplatform.serving import ASGI_LOOP, after_worker_init
from mosplatform.serving import worker_class as worker_class_for

bind = f"127.0.0.1:{os.environ.get('PORT', '8001')}"
# Threads hide database waits; processes use the cores. Each thread may hold one
# database connection: workers x threads x app servers must stay below PostgreSQL's
# max_connections (the app's pool: DB_POOL_SIZE + DB_MAX_OVERFLOW per worker).
workers = int(os.environ.get("WORKERS", min(2 * multiprocessing.cpu_count() + 1, 9)))
threads = int(os.environ.get("THREADS", 4))
# One thread: gthread's loop serving each request itself (mosplatform/gworker.py).
# WORKER=asgi: gunicorn's asyncio worker, one request at a time per process; the app is
# then "mosplatform.asgi:create_asgi_app()" (see mosplatform/serving.py).
worker_class = worker_class_for(os.environ.get("WORKER", "auto"), threads)
# The asgi worker's event loop, as mosplatform serve sets it (see mosplatform/serving.py).
asgi_loop = ASGI_LOOP
timeout = 60
graceful_timeout = 30  # on HUP/TERM, in-flight requests get this long to finish
keepalive = 75  # longer than nginx's upstream keepalive_timeout (60 s)
max_requests = 100000
max_requests_jitter = 10000
worker_tmp_dir = "/dev/shm"
forwarded_allow_ips = "127.0.0.1"
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(D)sus "%(a)s"'
errorlog = "-"
proc_name = f"mosplatform:{bind.rsplit(':', 1)[-1]}"
# The loaded application out of the garbage collector's way (no 100 ms pauses).
post_worker_init = after_worker_init
