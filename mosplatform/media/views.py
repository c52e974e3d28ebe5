"""Serve stimuli behind per-participant, per-trial opaque tokens.

The URL, headers and ETag carry nothing stable per condition: the ETag is derived
from the token, no file name is sent, and a token works only in the browser session
of the participant it was issued to. Range requests (206) and conditional requests
(304) are supported; behind nginx the body can be handed off with X-Accel-Redirect.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import soundfile as sf
from flask import Response, abort, current_app, request, send_file
from sqlalchemy import select

from ..extensions import db
from ..models import Participant
from ..services.lookup import media_row
from . import bp

CACHE_SECONDS = 7 * 24 * 3600


def _owned(participant_token: str) -> bool:
    """Whether this browser session opened the participant's link."""
    from ..participant.views import current_tokens

    return participant_token in current_tokens()


def _etag(token: str, content_hash: str) -> str:
    return hashlib.sha256(f"{token}:{content_hash}".encode()).hexdigest()[:32]


@bp.get("/<token>")
def stimulus(token: str) -> Response:
    if len(token) > 64:
        abort(404)
    # One query: the stimulus and the token of the participant the audio was issued to.
    row = media_row(token)
    if row is None or not _owned(row.token):
        abort(404, description="no such audio")
    stim = row
    root = Path(current_app.config["MEDIA_ROOT"]).resolve()
    path = (root / stim.path).resolve()
    if root not in path.parents or not path.is_file():
        abort(404, description="no such audio")
    mimetype = "audio/flac" if path.suffix == ".flac" else "audio/wav"
    etag = _etag(token, stim.content_hash)
    if current_app.config.get("USE_X_ACCEL_REDIRECT"):
        if request.if_none_match.contains(etag):
            return Response(status=304, headers={"ETag": f'"{etag}"'})
        resp = Response(mimetype=mimetype)
        resp.headers["X-Accel-Redirect"] = current_app.config["X_ACCEL_PREFIX"] + stim.path
        resp.set_etag(etag)
    else:
        resp = send_file(path, mimetype=mimetype, conditional=True, etag=etag,
                         last_modified=None, max_age=CACHE_SECONDS)
    resp.cache_control.private = True
    resp.cache_control.public = False
    resp.cache_control.max_age = CACHE_SECONDS
    resp.headers.pop("Last-Modified", None)
    resp.headers.pop("Content-Disposition", None)
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
