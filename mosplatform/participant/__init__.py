"""Listening pages: arrival, consent, instructions, calibration, trials, questionnaire."""

from flask import Blueprint

bp = Blueprint("participant", __name__)


@bp.before_request
def keep_loaded_rows() -> None:
    """Set up the session of a participant page or answer (only this request's).

    They commit and then read what they just wrote (the stage, the trials): keep the
    loaded objects after a commit instead of reading them again. And on PostgreSQL
    they read without a transaction until their first write
    (:func:`mosplatform.database.defer_begin`): most only read.
    """
    from ..database import defer_begin
    from ..extensions import db

    # On the session itself: set on the scoped_session proxy, the flag would change
    # nothing (it would only add an attribute to the proxy).
    session = db.session()
    session.expire_on_commit = False
    defer_begin(session)


from . import views  # noqa: E402,F401
