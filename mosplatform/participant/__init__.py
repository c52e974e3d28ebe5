"""Listening pages: arrival, consent, instructions, calibration, trials, questionnaire."""

from flask import Blueprint

bp = Blueprint("participant", __name__)


@bp.before_request
def keep_loaded_rows() -> None:
    """Participant pages and answers commit and then read what they just wrote (the
    stage, the trials): keep the loaded objects after a commit instead of reading
    them again. Only this request's session is changed."""
    from ..extensions import db

    # On the session itself: set on the scoped_session proxy, the flag would change
    # nothing (it would only add an attribute to the proxy).
    db.session().expire_on_commit = False


from . import views  # noqa: E402,F401
