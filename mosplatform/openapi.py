"""OpenAPI 3.1 description of the participant JSON API.

The description is built from the same constants the views and services enforce
(event kinds, size limits, key lengths), so it cannot drift from them silently; the
security tests fuzz the endpoints against it. Served at ``/api/openapi.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import __version__
from .services.ratings import (
    EVENT_KINDS,
    MAX_EVENTS_PER_BATCH,
    MAX_IDEMPOTENCY_KEY,
    MAX_STIMULUS_POSITION,
)

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
}

RATING = {
    "type": "object",
    "required": ["question", "score"],
    "properties": {
        "stimulus": {
            "type": ["integer", "null"], "minimum": 0,
            "description": "Position of the stimulus on the page; null for pair-level "
                           "questions (CCR, AB).",
        },
        "question": {"type": "string", "description": "Question key of the test."},
        "score": {"type": "number",
                  "description": "Within the question's scale (range or category set)."},
    },
}

LISTENING = {
    "type": "object",
    "required": ["stimulus"],
    "properties": {
        "stimulus": {"type": "integer"},
        "heard_s": {"type": "number", "minimum": 0},
        "plays": {"type": "integer", "minimum": 0},
    },
}

EVENT = {
    "type": "object",
    "required": ["kind"],
    "properties": {
        "kind": {"type": "string", "enum": sorted(EVENT_KINDS)},
        "trial": {"type": ["integer", "null"], "description": "0-based trial position."},
        "stimulus": {"type": ["integer", "null"], "minimum": -1,
                     "maximum": MAX_STIMULUS_POSITION},
        "t_ms": {"type": "number", "description": "Client clock, ms since the epoch."},
        "position_s": {"type": "number", "description": "Playhead in seconds."},
        "data": {"type": "object"},
    },
}


def _error_responses(*codes: int) -> dict[str, Any]:
    reasons = {400: "Malformed body, failed CSRF check or bad Idempotency-Key",
               403: "The browser session does not hold this participant's token, or the "
                    "participant was excluded",
               404: "No such participant or trial",
               409: "Out of order, already answered differently, or the test is not open",
               413: "Body too large", 415: "Not application/json",
               422: "Valid JSON that breaks the rules (scale, question, stimulus)"}
    return {str(c): {"description": reasons[c],
                     "content": {"application/json": {"schema": {"$ref":
                                                                 "#/components/schemas/Error"}}}}
            for c in codes}


def openapi_spec(api_max_bytes: int = 256 * 1024) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the participant API.

    Parameters
    ----------
    api_max_bytes : int
        The ``API_MAX_BYTES`` limit to document.

    Returns
    -------
    dict
        JSON-serialisable OpenAPI document.
    """
    token = {"name": "token", "in": "path", "required": True,
             "schema": {"type": "string", "maxLength": 64},
             "description": "The participant's opaque token."}
    csrf_header = {"name": "X-CSRFToken", "in": "header", "required": False,
                   "schema": {"type": "string"},
                   "description": "CSRF token from the page's trial-config (or send "
                                  "csrf_token in the body, for sendBeacon)."}
    common_errors = _error_responses(400, 403, 404, 413, 415, 422)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mosplatform participant API",
            "version": __version__,
            "description": (
                "JSON endpoints the trial pages call. Every call needs the browser session "
                "that opened the participant's link (cookie) and its CSRF token. Bodies "
                f"are limited to {api_max_bytes} bytes."),
        },
        "paths": {
            "/api/p/{token}/trial/{number}/ratings": {
                "post": {
                    "operationId": "submitTrial",
                    "summary": "Submit every rating of one trial, once.",
                    "parameters": [
                        token,
                        {"name": "number", "in": "path", "required": True,
                         "schema": {"type": "integer", "minimum": 1},
                         "description": "1-based trial number."},
                        csrf_header,
                        {"name": "Idempotency-Key", "in": "header", "required": False,
                         "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY,
                                    "pattern": "^[!-~]+$"},
                         "description": "Client-chosen key; a retry with the same key "
                                        "replays the first answer."},
                    ],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/TrialRatings"}}}},
                    "responses": {
                        "200": {"description": "Stored (or replayed)",
                                "content": {"application/json": {"schema": {
                                    "$ref": "#/components/schemas/TrialAccepted"}}}},
                        **common_errors,
                        **_error_responses(409),
                    },
                },
            },
            "/api/p/{token}/events": {
                "post": {
                    "operationId": "postEvents",
                    "summary": "Record a batch of page events (play, switch, ...).",
                    "parameters": [token, csrf_header],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/EventBatch"}}}},
                    "responses": {
                        "200": {"description": "Stored",
                                "content": {"application/json": {"schema": {
                                    "type": "object", "required": ["ok", "stored"],
                                    "properties": {"ok": {"const": True},
                                                   "stored": {"type": "integer"}}}}}},
                        **common_errors,
                    },
                },
            },
        },
        "components": {"schemas": {
            "Error": ERROR,
            "Rating": RATING,
            "Listening": LISTENING,
            "Event": EVENT,
            "TrialRatings": {
                "type": "object", "required": ["ratings"],
                "properties": {
                    "ratings": {"type": "array", "items": {"$ref": "#/components/schemas/Rating"}},
                    "listening": {"type": "array",
                                  "items": {"$ref": "#/components/schemas/Listening"}},
                    "events": {"type": "array", "maxItems": MAX_EVENTS_PER_BATCH,
                               "items": {"$ref": "#/components/schemas/Event"},
                               "description": "Page events not yet sent; stored with the "
                                              "ratings, or not at all if they are refused."},
                    "shown": {"type": "string", "maxLength": 200,
                              "description": "The trial page's signed 'shown' stamp; "
                                             "sets the trial's start time."},
                    "csrf_token": {"type": "string"},
                },
            },
            "TrialAccepted": {
                "type": "object", "required": ["ok", "stored", "next", "next_url"],
                "properties": {"ok": {"const": True}, "stored": {"type": "integer"},
                               "next": {"type": "integer"}, "next_url": {"type": "string"},
                               "next_trial": {"type": ["integer", "null"]},
                               "next_config": {
                                   "type": "object",
                                   "description": "The next trial's page configuration "
                                                  "(as embedded in its page, without the "
                                                  "UI strings), for showing it in place; "
                                                  "absent after the last trial."},
                               "replayed": {"type": "boolean"}},
            },
            "EventBatch": {
                "type": "object", "required": ["events"],
                "properties": {
                    "events": {"type": "array", "maxItems": MAX_EVENTS_PER_BATCH,
                               "items": {"$ref": "#/components/schemas/Event"}},
                    "csrf_token": {"type": "string"},
                },
            },
        }},
    }


def write_spec(path: str | Path) -> Path:
    """Write the OpenAPI document as JSON to ``path`` and return the path."""
    path = Path(path)
    path.write_text(json.dumps(openapi_spec(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
