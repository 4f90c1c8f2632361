"""gunicorn settings for `make serve`; every value can be set from the environment."""

import logging
import os
import tempfile

bind = f"{os.environ.get('IMGCLF_HOST', '127.0.0.1')}:{os.environ.get('IMGCLF_PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads per worker: concurrent requests decode in parallel and share model calls
# through the worker's micro-batcher (webapp/batching.py).
# gthread, except that a request takes a thread only once it has fully arrived: clients
# trickling bytes cost a socket, not a thread (webapp/worker.py).
worker_class = "webapp.worker.BufferedThreadWorker"
# More threads than IMGCLF_MAX_QUEUE (16): under a flood, requests beyond the queue
# reach the app and get their 503 at once instead of waiting for a thread.
threads = int(os.environ.get("IMGCLF_THREADS", "32"))
timeout = 60
# SIGTERM: stop accepting, let requests in flight finish for this long, then exit.
graceful_timeout = int(os.environ.get("IMGCLF_GRACEFUL_TIMEOUT_S", "30"))
# Workers answer /health while their model loads; /ready says when it is warm.
os.environ.setdefault("IMGCLF_LOAD_IN_BACKGROUND", "true")
accesslog = None  # the app logs one structured line per request itself

# Prometheus counters from all workers are summed through files in one directory.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="imgclf-metrics-"))


def on_starting(server):
    # The app's own lines (one JSON line per request, model loading) on stderr, as they
    # are; the workers inherit this from the master. gunicorn's own lines keep theirs.
    logging.basicConfig(level=logging.INFO, format="%(message)s")


def post_worker_init(worker):
    # The first workers start accepting at once, so /health answers while they load. A
    # worker that replaces one (after a crash, SIGHUP, TTIN or max_requests) accepts nothing
    # until its model is loaded: connections go to the workers already serving instead of
    # queueing behind this one's TensorFlow import and model load.
    if worker.age <= worker.cfg.workers:
        return
    from webapp.model_service import model_service

    service = model_service(worker.wsgi)
    while worker.alive and not service.wait_until_loaded(worker.timeout / 2):
        worker.notify()  # the master kills a worker silent for `timeout` seconds


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
