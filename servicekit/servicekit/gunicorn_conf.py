"""gunicorn settings shared by both Flask services (`gunicorn -c python:servicekit.gunicorn_conf`).

Greenlets (gevent, both services' default) or threads (gthread) let a worker overlap database
and downstream waits; several processes use both cores. Graceful shutdown gives in-flight
requests time to finish on SIGTERM. GUNICORN_WORKER_CLASS overrides the per-service default.
"""

import gc
import importlib.util
import multiprocessing
import os

from gunicorn.glogging import Logger

from servicekit import gunicorn_errors, gunicorn_response
from servicekit.limits import HEADER_FIELD_SIZE_MAX, HEADER_FIELDS_MAX, REQUEST_LINE_MAX

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", str(multiprocessing.cpu_count() * 2)))


def _default_worker_class(service: str) -> str:
    """gevent for both services: their requests are waits on MySQL and on each other, and a
    gevent worker serves them on one thread with no hand-off between an acceptor thread and a
    pool (measured on the bench box: about 30% less CPU per request than gthread for
    orders-service, and about 1.2 ms less per internal customer lookup for customers-service,
    bench/README.md). Both MySQL drivers cooperate with it: PyMySQL through gevent's patched
    sockets, mysqlclient through servicekit.db's wait on the hub
    (docs/adr/0009-mysqlclient-under-gevent.md). customers-service's argon2 hashing, tens of
    milliseconds of C, runs on native threads meanwhile (servicekit.blocking). gthread when
    gevent is not installed."""
    if service in ("orders-service", "customers-service") and importlib.util.find_spec("gevent") is not None:
        return "gevent"
    return "gthread"


worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or _default_worker_class(os.environ.get("SERVICE_NAME", ""))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
# What gunicorn refuses before the app sees a request (414, 431, 400), stated here rather than left
# to its defaults, and answered as problems instead of gunicorn's HTML (docs/errors-and-limits.md).
limit_request_line = REQUEST_LINE_MAX
limit_request_fields = HEADER_FIELDS_MAX
limit_request_field_size = HEADER_FIELD_SIZE_MAX
# In the master, before the workers fork: they inherit both.
gunicorn_errors.install()
gunicorn_response.install()  # status line, headers and body in one send
# Each worker builds its own connection pool after fork: connections must never be shared.
preload_app = False
# gunicorn 27's control socket defaults to one path per user: several masters on one machine
# (make run, tests, bench) would fight over it, and nothing here uses it.
control_socket_disable = True


class NoAccessLogLogger(Logger):
    """gunicorn's logger without its access log. With `logconfig_dict` set, gunicorn would build
    the access-log atoms for every request even though no handler writes them."""

    def _compute_access_log_enabled(self):
        return False

    def access(self, resp, req, environ, request_time):
        return None


def post_request(worker, req, environ, resp):
    """gevent: let the worker's other connections run between two requests of one keep-alive
    connection. A greenlet yields only when its socket has nothing to read, so a client whose
    next request is always there already (a load generator, a busy BFF) would keep the worker to
    itself while other connections wait: seconds at the bench's p99 before this yield."""
    if "gevent" in str(worker.cfg.worker_class_str):
        import gevent

        gevent.sleep(0)


# Collect the youngest generation after this many more container objects than were freed, not
# Python's 700. 20 requests in flight hold more than 700, so at 700 a worker ran a collection
# every request or two, each looking at every live object of every request in flight (about 1 %
# of its CPU under load); at 10,000 it ran about a dozen a minute (bench/README.md, "Issue 9, stop 17").
# Garbage without cycles is freed by reference counting either way.
GC_YOUNGEST_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    """Move every object the worker holds once its app is loaded (modules, the app, schemas,
    compiled statements: about 120,000 in orders-service) to the collector's permanent
    generation, and collect the youngest generation less often.

    Without it, each full collection walked all of those objects while the worker served
    nothing: 47-61 ms pauses under load, on all of its connections at once, which were most of
    orders-service's p99. After it, a full collection looks at what requests left behind:
    about 1 ms."""
    gc.collect()  # what loading left as garbage is freed, not kept for the worker's lifetime
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNGEST_THRESHOLD, middle, oldest)


def post_worker_init(worker):
    """After the worker loaded the app, before it serves: settle the garbage collector
    (`settle_garbage_collector`), and, for gevent, accept one connection per wake-up.

    gevent: a worker accepts one connection per wake-up of the listening socket, not up to
    100. All workers share that socket; with gevent's default, the first to wake takes every
    pending connection, so a burst of keep-alive clients (a BFF's pool, a load generator) lands
    mostly on one worker: 14 of 20 on one and 6 on the other, measured (bench/README.md). Its
    clients then queue behind each other while the other worker idles. One at a time, the
    workers take turns."""
    settle_garbage_collector()
    if "gevent" in str(worker.cfg.worker_class_str):
        from gevent.baseserver import BaseServer

        BaseServer.max_accept = 1


# Our own http_request log line replaces gunicorn's access log.
accesslog = None
logger_class = NoAccessLogLogger
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "servicekit.logging.JsonFormatter", "service": os.environ.get("SERVICE_NAME", "gunicorn")}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": loglevel.upper(), "propagate": False},
    },
}
