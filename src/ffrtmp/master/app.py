"""The Flask application factory: given its settings and its store, it builds the API and returns it."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from flask.json.provider import DefaultJSONProvider
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.routing import BaseConverter
from werkzeug.sansio.response import Response as BaseResponse

from ffrtmp.master import console, errors
from ffrtmp.master.api import agents, health, jobs, masters, nodes, progress, stats
from ffrtmp.master.context import EXTENSION, MasterContext
from ffrtmp.master.store.ids import ID_PREFIXES
from ffrtmp.master.store.protocol import Store
from ffrtmp.settings import MasterSettings
from ffrtmp.shutdown import Shutdown

log = logging.getLogger(__name__)

METRICS_PATHS = ("/metrics", "/health")


class MasterFlask(Flask):
    """Flask, remembering which views and hooks are plain functions (every one here) instead of
    inspecting each again on every request (``ensure_sync`` is Flask's documented override)."""

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._plain: set[Callable[..., Any]] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if func in self._plain:
            return func
        synced = super().ensure_sync(func)
        if synced is func:
            self._plain.add(func)
        return synced


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON answers with keys in the order the views build them, encoded by one compact
    encoder made once (``json.dumps`` with options makes a new encoder for every answer)."""

    sort_keys = False

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self._compact = json.JSONEncoder(separators=(",", ":"), default=self.default,
                                         ensure_ascii=self.ensure_ascii, sort_keys=self.sort_keys)

    def response(self, *args: Any, **kwargs: Any) -> BaseResponse:
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)  # indented, as Flask's debug mode has it
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(f"{self._compact.encode(obj)}\n", mimetype=self.mimetype)


def id_converter(prefix: str) -> type[BaseConverter]:
    """``<job:job_id>``: an id as ``store.new_id(prefix)`` mints it, ``<prefix>-<suffix>``.

    The prefix keeps route words (``/nodes/register``) from being read as ids. The suffix is
    looser than the minted hex, so a made-up id still reaches the store and its named 404.
    """
    return type(f"{prefix.upper()}IdConverter", (BaseConverter,),
                {"regex": re.escape(prefix) + r"-[0-9A-Za-z]{1,64}"})


def _port_and_body_guard(metrics_port: str) -> Callable[[], Response | None]:
    """One hook, run before every view: the metrics port serves only its paths, and a chunked
    body is held to ``max_body`` (one hook rather than two: each costs a dispatch per request)."""

    def guard() -> Response | None:
        environ = request.environ
        if environ.get("SERVER_PORT") == metrics_port and request.path not in METRICS_PATHS:
            return errors.envelope(404, "not_found", "the metrics port serves /metrics and /health")
        _whole_streamed_body(environ)
        return None

    return guard


def _request_counter(ctx: MasterContext) -> Callable[[Response], Response]:
    """Count every answer by method, route template and status; each labelled child is looked
    up once and kept, as prometheus-client keeps it (``labels()`` re-checks them each time)."""
    children: dict[tuple[str, str, int], Any] = {}
    requests = ctx.metrics.requests

    def count(response: Response) -> Response:
        rule = request.url_rule
        key = (request.method, rule.rule if rule else "unmatched", response.status_code)
        child = children.get(key)
        if child is None:
            child = children[key] = requests.labels(key[0], key[1], str(key[2]))
        child.inc()
        return response

    return count


def _whole_streamed_body(environ: dict[str, Any]) -> None:
    """Hold a chunked body to ``max_body`` as a Content-Length body is held.

    Werkzeug limits such a stream with ``LimitedStream(is_max=True)`` but stops reading exactly
    at the limit, so a longer body is cut there and parsed as if it were whole. Reading one byte
    past the limit tells the two apart; the body is then served from memory with its length.
    """
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


def create_app(settings: MasterSettings, store: Store, *, shutdown: Shutdown | None = None,
               started_at: float | None = None) -> Flask:
    """The API over ``store``, which the caller opened and migrated (and closes); ``started_at``
    is when the master started (its arbiter; default now), as the masters' list shows it.

    Nothing starts here: the caller runs ``context.of(app).start()`` where the app is served
    (gunicorn's ``post_worker_init``) and ``stop()`` when it is done.
    """
    app = MasterFlask("ffrtmp.master")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    app.json = JsonProvider(app)
    ctx = MasterContext(settings, store, shutdown or Shutdown(), started_at=started_at)
    app.extensions[EXTENSION] = ctx
    errors.init_app(app)
    app.url_map.converters.update({kind: id_converter(p) for kind, p in ID_PREFIXES.items()})
    app.url_map.converters["noderef"] = nodes.NodeRefConverter  # id, unique id prefix or name
    for blueprint in (health.bp, jobs.bp, nodes.bp, agents.bp, masters.bp, progress.bp, stats.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(console.bp)  # the web console at /ui (master/console)
    app.before_request(_port_and_body_guard(str(settings.metrics_bind[1])))
    app.after_request(_request_counter(ctx))
    return app
