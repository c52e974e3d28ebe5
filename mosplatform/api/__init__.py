"""JSON endpoints the participant pages call."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from ..participant import keep_loaded_rows  # noqa: E402

bp.before_request(keep_loaded_rows)

from . import views  # noqa: E402,F401
