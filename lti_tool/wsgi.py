"""The WSGI entry point for gunicorn: `gunicorn lti_tool.wsgi:app`."""

import gc

from lti_tool.app import create_app

app = create_app()

# What is loaded by now (the catalog, templates, SQLAlchemy's metadata: ~130,000 objects) lives
# as long as the worker. Frozen, the garbage collector's full passes no longer walk it: each
# such pass otherwise held up the request that triggered it for 40-70 ms.
gc.collect()
gc.freeze()
