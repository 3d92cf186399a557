"""The web console's HTTP side (Starlette): the page, its static files, the JSON API and the change stream.

Every answer is JSON except the page, its files and the streams. Failures answer `{"error": {...}}` with
one status per kind of failure (`errors.STATUS_TABLE`). A visitor's token comes in the `Authorization:
Bearer` header only. Nothing here sends CORS headers; a POST must declare a JSON body and, when the browser
says where it comes from, come from this console's own origin.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from ipaddress import ip_address
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lonja.config import Settings

from ..errors import LonjaError, NameServerUnreachable, UsageError
from . import operations
from .errors import CrossSiteRequest, NotFound, UnsupportedMediaType, error_body, status_of
from .feed import Feeds
from .openapi import openapi

KEEP_ALIVE = 15.0  # seconds between comments on an idle change stream
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                 b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
_END = object()


class JSON(JSONResponse):
    """JSON with non-ASCII text kept and anything unusual as its str."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, default=str, separators=(",", ":")).encode()


def error_response(exc: BaseException, uri: str | None = None) -> JSON:
    return JSON(error_body(exc, uri), status_code=status_of(exc))


def token_of(request: Request) -> str:
    """The visitor's token from `Authorization: Bearer TOKEN` ("" for none)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def check_same_origin(request: Request) -> None:
    """Refuse a request that can change something unless it is JSON from this console's own pages (or from
    a program, which sends no Origin)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("send the body as JSON, with `Content-Type: application/json`")
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin != own:
        raise CrossSiteRequest(f"a request from {origin} may not call or change anything here")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise CrossSiteRequest("a request from another site may not call or change anything here")


class Guard:
    """ASGI middleware: the security headers on every answer, and, when the console listens on loopback
    only, requests for another host name refused (a DNS-rebinding page cannot reach it)."""

    def __init__(self, app: ASGIApp, loopback_only: bool) -> None:
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.loopback_only and not _loopback_host(dict(scope["headers"]).get(b"host", b"").decode("latin-1")):
            response = error_response(CrossSiteRequest("this console answers requests for 127.0.0.1 or "
                                                       "localhost only"))
            await response(scope, receive, self._with_headers(send))
            return
        await self.app(scope, receive, self._with_headers(send))

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *[header for header in SECURITY_HEADERS
                                        if header[0] != b"cache-control" or not _has(message, b"cache-control")]]
            await send(message)
        return sending


def _has(message: Message, name: bytes) -> bool:
    return any(key.lower() == name for key, _ in message.get("headers", []))


def _loopback_host(host: str) -> bool:
    """True if a Host header names this machine's loopback interface (with or without a port)."""
    name = host.partition(":")[0] if not host.startswith("[") else host[1:].partition("]")[0]
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(name).is_loopback
    except ValueError:
        return False


def create_app(settings: Settings, loopback_only: bool = True) -> tuple[ASGIApp, Feeds]:
    """The console for the name server of `settings`, as an ASGI application, and its change feeds (close
    them first when stopping: open change streams then end at once)."""
    feeds = Feeds(settings)

    async def threaded(function: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(function, *args)

    async def api(handler: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
        try:
            return await handler(request)
        except LonjaError as exc:
            return error_response(exc)

    async def index(request: Request) -> Response:
        page = resources.files(__package__).joinpath("static", "index.html").read_bytes()
        return Response(page, media_type="text/html; charset=utf-8")

    async def names(request: Request) -> Response:
        query = request.query_params
        lists = {key: query.getlist(key) for key in ("meta_all", "meta_any", "status")}
        wanted = operations.selection_from_query(query, lists)
        return JSON(await threaded(operations.list_names, settings, token_of(request), wanted))

    async def name(request: Request) -> Response:
        name = request.path_params["name"]
        token = token_of(request)
        entry = await threaded(operations.name_entry, settings, token, name)
        answer: dict[str, Any] = {"name": name, **entry, "description": None, "description_error": None}
        try:
            answer["description"] = operations.to_json(await threaded(operations.describe_name, settings, token,
                                                                      name))
        except LonjaError as exc:  # the entry is still worth showing when its service does not answer
            answer["description_error"] = error_body(exc)["error"]
        return JSON(answer)

    async def whoami(request: Request) -> Response:
        return JSON(await threaded(operations.whoami, settings, token_of(request)))

    async def changes(request: Request) -> Response:
        limit = _int(request.query_params.get("limit", "100"), "limit")
        return JSON(await threaded(operations.recent_changes, settings, token_of(request), limit,
                                   request.query_params.get("prefix", "")))

    async def change_stream(request: Request) -> Response:
        token = token_of(request)
        try:
            await threaded(operations.whoami, settings, token)  # a refused token gets its error now, as JSON
        except NameServerUnreachable:
            pass  # the stream says so, and says when it is back
        feed, subscriber = feeds.subscribe(token, request.query_params.get("prefix", ""))

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        kind, data = await asyncio.wait_for(subscriber.queue.get(), KEEP_ALIVE)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if not kind:
                        return
                    yield f"event: {kind}\ndata: {json.dumps(data, default=str, ensure_ascii=False)}\n\n"
            finally:
                feeds.unsubscribe(feed, subscriber)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def call(request: Request) -> Response:
        check_same_origin(request)
        try:
            body = json.loads(await request.body() or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"the body is not valid JSON: {exc}") from None
        parsed = operations.CallRequest.parse(request.path_params["target"], body)
        token = token_of(request)
        await threaded(operations.check_may_call, settings, token)
        running = operations.Call(settings, token, parsed)
        try:
            await threaded(running.start)
        except LonjaError as exc:
            return error_response(exc, running.uri)
        if not running.generator:
            return JSON({"result": operations.to_json(running.result), "repr": operations.shown(running.result),
                         "uri": running.uri, "generator": False, "oneway": running.oneway})
        try:
            first = await threaded(running.next_item, _END)
        except LonjaError as exc:
            return error_response(exc, running.uri)
        return StreamingResponse(_stream_lines(running, first, threaded), media_type="application/x-ndjson",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def openapi_json(request: Request) -> Response:
        return JSON(openapi())

    async def not_found(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code != 404:
            kind = "MethodNotAllowed" if exc.status_code == 405 else "HTTPError"
            return JSON({"error": {"type": kind, "message": exc.detail, "status": exc.status_code, "exit_code": 2}},
                        status_code=exc.status_code)
        return error_response(NotFound(f"no such page or API path: {request.url.path}"))

    def route(path: str, handler: Callable[[Request], Awaitable[Response]], methods: list[str] | None = None) -> Route:
        async def endpoint(request: Request) -> Response:
            return await api(handler, request)
        return Route(path, endpoint, methods=methods or ["GET"])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            feeds.close()

    app = Starlette(
        routes=[
            Route("/", index),
            route("/openapi.json", openapi_json),
            route("/api/names", names),
            route("/api/names/{name:path}", name),
            route("/api/whoami", whoami),
            route("/api/changes", changes),
            route("/api/changes/stream", change_stream),
            route("/api/call/{target:path}", call, ["POST"]),
            Mount("/static", StaticFiles(packages=[(__package__, "static")]), name="static"),
        ],
        exception_handlers={HTTPException: not_found},
        lifespan=lifespan,
    )
    return Guard(app, loopback_only), feeds


async def _stream_lines(running: operations.Call, first: Any,
                        threaded: Callable[..., Awaitable[Any]]) -> AsyncIterator[str]:
    """A generator's items as JSON lines, `{"item": ..., "repr": ...}`, then `{"end": true, "count": N}`, or
    `{"error": {...}}` if it fails midway."""
    count = 0
    item = first
    try:
        while item is not _END:
            count += 1
            yield json.dumps({"item": operations.to_json(item), "repr": operations.shown(item)},
                             ensure_ascii=False) + "\n"
            try:
                item = await threaded(running.next_item, _END)
            except LonjaError as exc:
                yield json.dumps(error_body(exc, running.uri), ensure_ascii=False) + "\n"
                return
        yield json.dumps({"end": True, "count": count}) + "\n"
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(running.close)


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{what} must be a whole number, got {text!r}") from None
