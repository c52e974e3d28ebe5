"""Serve stimuli behind per-participant, per-trial opaque tokens.

The URL, headers and ETag carry nothing stable per condition: the ETag is derived
from the token, no file name is sent, and a token works only in the browser session
of the participant it was issued to. Range requests (206) and conditional requests
(304) are supported; behind nginx the body can be handed off with X-Accel-Redirect.
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from pathlib import Path

import soundfile as sf
from flask import Response, abort, current_app, request, send_file
from sqlalchemy import select
from werkzeug.wsgi import wrap_file

from ..extensions import db
from ..models import Participant
from ..services.lookup import media_row
from . import bp

CACHE_SECONDS = 7 * 24 * 3600
# Per participant and token, so private; never revalidated within the week.
CACHE_CONTROL = f"private, max-age={CACHE_SECONDS}"
MAX_TOKEN = 64


def _owned(participant_token: str) -> bool:
    """Whether this browser session opened the participant's link."""
    from ..participant.views import current_tokens

    return participant_token in current_tokens()


def etag_of(token: str, content_hash: str) -> str:
    """The ETag (unquoted) of the audio behind ``token``: per token, never per condition."""
    return hashlib.sha256(f"{token}:{content_hash}".encode()).hexdigest()[:32]


def mimetype_of(path: str) -> str:
    """The media type of a stored stimulus file."""
    return "audio/flac" if path.endswith(".flac") else "audio/wav"


@lru_cache(maxsize=8192)
def stored_file(root: str, relpath: str, content_hash: str) -> tuple[str, int] | None:
    """Absolute path and size of a stored stimulus, or None if it is missing or would
    lie outside the media folder.

    Keyed by the content hash too: stored audio never changes under one hash, so the
    path checks and the stat run once per file and process, not on every request.
    """
    base = Path(root).resolve()
    path = (base / relpath).resolve()
    if base not in path.parents or not path.is_file():
        return None
    return str(path), path.stat().st_size


@bp.get("/<token>")
def stimulus(token: str) -> Response:
    if len(token) > MAX_TOKEN:
        abort(404)
    # One query: the stimulus and the token of the participant the audio was issued to.
    row = media_row(token)
    if row is None or not _owned(row.token):
        abort(404, description="no such audio")
    found = stored_file(current_app.config["MEDIA_ROOT"], row.path, row.content_hash)
    if found is None:
        abort(404, description="no such audio")
    path, size = found
    mimetype = mimetype_of(path)
    etag = etag_of(token, row.content_hash)
    accel = bool(current_app.config.get("USE_X_ACCEL_REDIRECT"))
    if accel:
        if request.if_none_match.contains_weak(etag):
            resp = Response(status=304)
        else:
            resp = Response(mimetype=mimetype)
            resp.headers["X-Accel-Redirect"] = current_app.config["X_ACCEL_PREFIX"] + row.path
    else:
        try:
            body = open(path, "rb")  # noqa: SIM115 - closed by the response
        except OSError:
            stored_file.cache_clear()
            abort(404, description="no such audio")
        resp = Response(wrap_file(request.environ, body), mimetype=mimetype,
                        direct_passthrough=True)
        resp.content_length = size
    resp.set_etag(etag)
    resp.headers["Cache-Control"] = CACHE_CONTROL
    if not accel:
        # The file itself: 304 for a matching If-None-Match, 206/416 for a Range request.
        resp.make_conditional(request, accept_ranges=True, complete_length=size)
    return resp


@bp.get("/check/<token>/<int:trial>/<int:option>")
def check(token: str, trial: int, option: int) -> Response:
    """A headphone-screening signal; the answer stays on the server."""
    from ..participant.views import current_tokens
    from ..services import headphone

    if token not in current_tokens() or not (0 <= trial < headphone.N_CHECK_TRIALS) \
            or not (0 <= option < 3):
        abort(404)
    participant = db.session.execute(
        select(Participant).where(Participant.token == token)).scalar_one_or_none()
    if participant is None or headphone.check_kind(participant) == "none":
        abort(404)
    buf = io.BytesIO()
    sf.write(buf, headphone.check_signal(participant, trial, option), 44100, format="WAV",
             subtype="PCM_16")
    buf.seek(0)
    resp = send_file(buf, mimetype="audio/wav", max_age=0)
    resp.cache_control.no_store = True
    return resp
