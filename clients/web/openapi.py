"""The OpenAPI 3.1 description of the web console's API, served at `/openapi.json`."""

from __future__ import annotations

from typing import Any

from lonja import __version__

from .errors import INTERNAL_STATUS, STATUS_TABLE

_ERROR = {"$ref": "#/components/schemas/Error"}
_TOKEN: list[dict[str, list[str]]] = [{"bearer": []}, {}]


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"description": _STATUS_TEXT[status], "content": {"application/json": {"schema": _ERROR}}}
            for status in statuses}


_STATUS_TEXT = {
    400: "bad request: malformed JSON, bad arguments, unknown method, bad filter (UsageError)",
    401: "a call without a token while the name server checks tokens (TokenRequired)",
    403: "the token is refused or its role may not do this (AccessDenied), or a cross-site request "
         "(CrossSiteRequest)",
    404: "no such name (NameNotFound) or path (NotFound)",
    409: "the name is taken (NameTaken)",
    415: "a POST whose body is not declared as application/json (UnsupportedMediaType)",
    422: "the remote method raised (RemoteError, with remote_type and location)",
    500: "a bug in lonja (InternalError)",
    502: "the service does not answer, or its answer was lost (ServiceUnreachable, OutcomeUnknown)",
    503: "the name server does not answer (NameServerUnreachable)",
    504: "the call took longer than its timeout (CallTimeout)",
}


def openapi() -> dict[str, Any]:
    """The description, built from the same status table the API answers with."""
    filters = [
        {"name": "pattern", "in": "query", "schema": {"type": "string"},
         "description": "as `lonja ls PATTERN`: a glob on the whole name if it has *?[, else a prefix"},
        {"name": "prefix", "in": "query", "schema": {"type": "string"}, "description": "names starting with this"},
        {"name": "glob", "in": "query", "schema": {"type": "string"}, "description": "shell pattern on the name"},
        {"name": "regex", "in": "query", "schema": {"type": "string"},
         "description": "regular expression matched at the start of the name"},
        {"name": "meta_all", "in": "query", "schema": {"type": "array", "items": {"type": "string"}},
         "description": "has every one of these tags (repeat, or comma-separated)"},
        {"name": "meta_any", "in": "query", "schema": {"type": "array", "items": {"type": "string"}},
         "description": "has at least one of these tags"},
        {"name": "status", "in": "query",
         "schema": {"type": "array", "items": {"enum": ["serving", "not serving", "unreachable", "unknown"]}},
         "description": "at least one instance has one of these statuses (repeat, or comma-separated)"},
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "lonja web console", "version": __version__,
                 "description": "The registry of a lonja name server, service descriptions and method calls. "
                                "Errors: " + ", ".join(f"{status} {kind.__name__}" for kind, status in STATUS_TABLE)
                                + f", {INTERNAL_STATUS} InternalError."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a lonja token (auth.*_tokens); never in the URL"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["type", "message", "status", "exit_code"],
                    "properties": {"type": {"type": "string"}, "message": {"type": "string"},
                                   "status": {"type": "integer"},
                                   "exit_code": {"type": "integer", "description": "what `lonja` exits with"},
                                   "remote_type": {"type": "string"}, "remote_message": {"type": "string"},
                                   "location": {"type": "object", "properties": {
                                       "uri": {"type": ["string", "null"]}, "file": {"type": "string"},
                                       "line": {"type": "integer"}, "function": {"type": "string"}}}}}}},
                "Instance": {"type": "object", "properties": {
                    "uri": {"type": "string"}, "status": {"type": "string"}, "last_seen": {"type": "number"},
                    "lease": {"type": "boolean"}, "class": {"type": "string"}, "owner": {"type": "string"}}},
                "Entry": {"type": "object", "properties": {
                    "uri": {"type": "string"}, "metadata": {"type": "array", "items": {"type": "string"}},
                    "instances": {"type": "array", "items": {"$ref": "#/components/schemas/Instance"}}}},
                "Change": {"type": "object", "properties": {
                    "seq": {"type": "integer"}, "kind": {"type": "string", "enum": ["added", "removed", "status"]},
                    "name": {"type": "string"}, "uri": {"type": "string"}, "status": {"type": "string"},
                    "time": {"type": "number"}}},
                "CallBody": {"type": "object", "description": "either args/kwargs (JSON values) or text/argv "
                             "(words parsed as `lonja call` parses them: a Python literal if one, else a string)",
                             "properties": {"args": {"type": "array"}, "kwargs": {"type": "object"},
                                            "text": {"type": "string", "examples": ["3 delay=0.5"]},
                                            "argv": {"type": "array", "items": {"type": "string"}},
                                            "timeout": {"type": "number", "description": "seconds; 0 = no limit"}}},
            },
        },
        "paths": {
            "/api/names": {"get": {
                "summary": "names with their instances and metadata, filtered as `lonja ls` filters",
                "parameters": filters, "security": _TOKEN,
                "responses": {"200": {"description": "the names", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "names": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Entry"}},
                        "count": {"type": "integer"}, "statuses": {"type": "object"},
                        "live": {"type": "boolean", "description": "the name server has a change log"},
                        "ns": {"type": "string"}}}}}},
                              **_errors(400, 403, 503)}}},
            "/api/names/{name}": {"get": {
                "summary": "one name: its entry and its service's description (methods, attributes)",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "security": _TOKEN,
                "responses": {"200": {"description": "entry, `description` (null with `description_error` if "
                                                     "the service does not answer)"},
                              **_errors(403, 404, 503)}}},
            "/api/call/{target}": {"post": {
                "summary": "call NAME.METHOD (split at the last dot)",
                "parameters": [{"name": "target", "in": "path", "required": True, "schema": {"type": "string"},
                                "examples": {"echo": {"value": "echo.echo"}}}],
                "security": _TOKEN,
                "requestBody": {"required": False, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/CallBody"}}}},
                "responses": {"200": {"description": "`{result, repr, uri}`; a generator method streams JSON "
                                                     "lines `{item, repr}` ending with `{end, count}` or `{error}`",
                                      "content": {"application/json": {}, "application/x-ndjson": {}}},
                              **_errors(400, 401, 403, 404, 415, 422, 502, 503, 504)}}},
            "/api/whoami": {"get": {"summary": "who the name server takes the token for, and its role",
                                    "security": _TOKEN,
                                    "responses": {"200": {"description": "`{who, role}`"}, **_errors(403, 503)}}},
            "/api/changes": {"get": {
                "summary": "the newest changes in the name server's log, oldest first",
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100}},
                               {"name": "prefix", "in": "query", "schema": {"type": "string"}}],
                "security": _TOKEN,
                "responses": {"200": {"description": "`{seq, events: [Change], live}`"}, **_errors(400, 403, 503)}}},
            "/api/changes/stream": {"get": {
                "summary": "server-sent events: `change` (a Change), `reset` (reload the list), `ns` "
                           "(`{up, live, message}`: whether the name server answers)",
                "parameters": [{"name": "prefix", "in": "query", "schema": {"type": "string"}}],
                "security": _TOKEN,
                "responses": {"200": {"description": "an event stream", "content": {"text/event-stream": {}}},
                              **_errors(403)}}},
        },
    }
