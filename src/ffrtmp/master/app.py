"""The Flask application factory: given its settings and its store, it builds the API and returns it."""

from __future__ import annotations

import io
import logging
import re
import time
from typing import Any

from flask import Flask, Response, current_app, g, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from ffrtmp.master import errors
from ffrtmp.master.api import agents, health, jobs, nodes
from ffrtmp.master.context import EXTENSION, MasterContext
from ffrtmp.master.store.ids import ID_PREFIXES
from ffrtmp.master.store.protocol import Store
from ffrtmp.settings import MasterSettings
from ffrtmp.shutdown import Shutdown

log = logging.getLogger(__name__)

METRICS_PATHS = ("/metrics", "/health")


def id_converter(prefix: str) -> type[BaseConverter]:
    """``<job:job_id>``: an id as ``store.new_id(prefix)`` mints it, ``<prefix>-<suffix>``.

    The prefix keeps route words (``/nodes/register``) from being read as ids. The suffix is
    looser than the minted hex, so a made-up id still reaches the store and its named 404.
    """
    return type(f"{prefix.upper()}IdConverter", (BaseConverter,),
                {"regex": re.escape(prefix) + r"-[0-9A-Za-z]{1,64}"})


def _whole_streamed_body() -> None:
    """Hold a chunked body to ``max_body`` as a Content-Length body is held.

    Werkzeug limits such a stream with ``LimitedStream(is_max=True)`` but stops reading exactly
    at the limit, so a longer body is cut there and parsed as if it were whole. Reading one byte
    past the limit tells the two apart; the body is then served from memory with its length.
    """
    environ = request.environ
    if request.content_length is not None or not environ.get("wsgi.input_terminated"):
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    try:
        body = environ["wsgi.input"].read(limit + 1)
    except (ParseException, OSError) as exc:  # gunicorn de-chunks as it reads
        raise BadRequest("the chunked body is malformed or incomplete") from exc
    if len(body) > limit:
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


def create_app(settings: MasterSettings, store: Store, *, shutdown: Shutdown | None = None) -> Flask:
    """The API over ``store``, which the caller opened and migrated (and closes).

    Nothing starts here: the caller runs ``context.of(app).start()`` where the app is served
    (gunicorn's ``post_worker_init``) and ``stop()`` when it is done.
    """
    app = Flask("ffrtmp.master")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider has it; the base type does not
    ctx = MasterContext(settings, store, shutdown or Shutdown())
    app.extensions[EXTENSION] = ctx
    errors.init_app(app)
    app.url_map.converters.update({kind: id_converter(p) for kind, p in ID_PREFIXES.items()})
    for blueprint in (health.bp, jobs.bp, nodes.bp, agents.bp):
        app.register_blueprint(blueprint)
    metrics_port = str(settings.metrics_bind[1])

    @app.before_request
    def _metrics_port_serves_only_metrics() -> Any:
        g.started = time.monotonic()
        if request.environ.get("SERVER_PORT") == metrics_port and request.path not in METRICS_PATHS:
            return errors.envelope(404, "not_found", "the metrics port serves /metrics and /health")
        return None

    app.before_request(_whole_streamed_body)

    @app.after_request
    def _count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        ctx.metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        return response

    return app
