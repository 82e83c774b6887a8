"""The console's routes: login, the jobs, job and nodes pages, and its JSON endpoints.

Pages are rendered on the server from the API's answers (``apicall.call``); a little script
then polls ``/ui/api/…`` (the same answers) to move progress bars and states, and sends the
operator's actions there with the session's CSRF token after a confirmation.
"""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Flask, Response, jsonify, redirect, render_template, request, url_for
from flask import session as flask_session
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.wrappers import Response as BaseResponse

from ffrtmp.contract import JobState, Queue
from ffrtmp.master.console import charts, render, session
from ffrtmp.master.console.apicall import call
from ffrtmp.master.errors import ApiError, Forbidden, Unauthorized
from ffrtmp.master.store.errors import RecordNotFound, StoreError, StoreUnavailable
from ffrtmp.validation import JOB_ID, FieldError

bp = Blueprint("console", __name__, url_prefix="/ui", template_folder="templates",
               static_folder="static", static_url_path="/static")
_PUBLIC = {"console.login", "console.static"}
_FILTERS = ("state", "queue", "node")
_RUNNING = "assigned,running"


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    app = cast(Flask, state.app)
    session.configure(app)
    app.jinja_env.filters.update(render.FILTERS)


@bp.before_request
def _require_login() -> BaseResponse | None:
    if request.endpoint in _PUBLIC or session.operator_token() is not None:
        return None
    if request.path.startswith("/ui/api/"):
        raise Unauthorized("unauthorized", "log in to the console first")
    return redirect(url_for("console.login"))


@bp.after_request
def _headers(response: Response) -> Response:
    """Nothing from elsewhere: scripts and styles are the master's own files, no framing."""
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none';"
                                " form-action 'self'; base-uri 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "console.static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.get("/")
def index() -> BaseResponse:
    return redirect(url_for("console.jobs"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int]:
    if request.method == "GET":
        return render_template("login.html", error=None), 200
    if not session.same_origin():
        return render_template("login.html", error="this form was sent from another site"), 400
    if set(request.form) - {"token"} or "token" not in request.form:
        return render_template("login.html", error="the form takes one field: token"), 400
    if not session.log_in(request.form["token"].strip()):
        return render_template("login.html", error="that is not an operator token"), 401
    return redirect(url_for("console.jobs"), 303)


@bp.post("/logout")
def logout() -> BaseResponse:
    if not session.csrf_ok(request.form.get("csrf")):
        raise Forbidden("csrf", "missing or wrong CSRF token; reload the page")
    flask_session.clear()
    return redirect(url_for("console.login"), 303)


def _failure(exc: Exception) -> tuple[str, int]:
    """A refusal as a page: the API's message, 404 for what does not exist, else 400 (503 when
    the store is down); never a 500 for what the operator typed."""
    if isinstance(exc, StoreUnavailable):
        status = 503
    elif isinstance(exc, RecordNotFound) or getattr(exc, "status", None) == 404 \
            or getattr(exc, "code", None) == 404:
        status = 404
    else:
        status = 400
    message = getattr(exc, "message", None) or getattr(exc, "description", None) or str(exc)
    return render_template("error.html", status=status, message=message), status


@bp.get("/jobs")
def jobs() -> tuple[str, int]:
    unknown = sorted(set(request.args) - set(_FILTERS))
    if unknown:
        return _failure(ApiError("invalid", f"{unknown[0]}: unknown filter (use state, queue, node)"))
    filters = {k: v for k in _FILTERS if (v := request.args.get(k, "").strip())}
    try:
        listed = call("/api/v1/jobs", query={**filters, "limit": 100})["jobs"]
        nodes = call("/api/v1/nodes")["nodes"]
        depth, throughput = charts.last_hour(call("/api/v1/stats/queue"))
    except (ApiError, StoreError, HTTPException) as exc:
        return _failure(exc)
    names = {n["id"]: n.get("name") or n["id"] for n in nodes}
    return render_template("jobs.html", jobs=listed, nodes=nodes, names=names, filters=filters,
                           states=list(JobState), queues=list(Queue),
                           charts=(depth, throughput)), 200


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> tuple[str, int]:
    try:
        JOB_ID(job_id, "job id")
    except FieldError as exc:
        return _failure(ApiError("invalid", f"{exc.field}: {exc.message}"))
    try:
        shown = call(f"/api/v1/jobs/{job_id}")["job"]
        log = call(f"/api/v1/jobs/{job_id}/logs").get("log") or ""
        names = {n["id"]: n.get("name") or n["id"] for n in call("/api/v1/nodes")["nodes"]}
    except (ApiError, StoreError, HTTPException) as exc:
        return _failure(exc)
    return render_template("job.html", job=shown, log=log, names=names), 200


@bp.get("/nodes")
def nodes() -> tuple[str, int]:
    if request.args:
        return _failure(ApiError("invalid", f"{sorted(request.args)[0]}: the nodes page takes no query"))
    try:
        listed = call("/api/v1/nodes")["nodes"]
        running = {n["id"]: call("/api/v1/jobs", query={"node": n["id"], "state": _RUNNING,
                                                         "limit": 50})["jobs"] for n in listed}
    except (ApiError, StoreError, HTTPException) as exc:
        return _failure(exc)
    return render_template("nodes.html", nodes=listed, running=running), 200


@bp.get("/<path:rest>")
def unknown(rest: str) -> tuple[str, int]:
    """Any other page under /ui: a page saying so, not the API's JSON 404."""
    return _failure(NotFound(f"the console has no page /ui/{rest}"))


@bp.route("/api/<path:rest>", methods=["GET", "POST"])
def api(rest: str) -> Response:
    """The API's read views and the four actions, for the console's script; a POST needs the
    session's CSRF token in the ``X-Console-CSRF`` header."""
    if request.method == "POST" and not session.csrf_ok(request.headers.get(session.CSRF_HEADER)):
        raise Forbidden("csrf", "missing or wrong CSRF token; reload the page")
    if request.get_data(cache=True):
        raise ApiError("bad_request", "the console's endpoints take no body")
    return jsonify(call(f"/api/v1/{rest}", method=request.method, query=request.args))

