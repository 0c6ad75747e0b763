"""WSGI entry point: `gunicorn -c python:servicekit.gunicorn_conf orders_service.wsgi:app`."""

from .app import create_app

app = create_app()
