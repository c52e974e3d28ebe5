"""Researcher dashboard views: thin wrappers around the services.

Every URL of the blueprint except the login page needs a logged-in admin (a
participant's browser session never carries one). Test-scoped URLs answer 404 to
admins who may not view the test (its existence is not revealed) and 403 to
collaborators who try to change it. Every form carries a CSRF token.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from ..config import DefinitionError, parse_definition_text
from ..extensions import csrf, db
from ..extensions import login as login_manager
from ..models import AdminUser, Participant, Test
from ..services import dashboard
from ..services import uploads as upload_service
from ..services.accounts import LoginThrottle, authenticate
from ..services.assignment import Arrival, AssignmentError, admit_participant
from ..services.export import events_frame, participants_frame, ratings_frame
from ..services.permissions import can_edit, can_view, visible_tests_query
from . import bp, operations
from .forms import (
    CollaboratorForm,
    ExclusionForm,
    LoginForm,
    NewTestForm,
    StatusForm,
    UploadForm,
)

# A session cookie replayed from another address or browser loses its login.
login_manager.session_protection = "strong"
PARTICIPANTS_PER_PAGE = 200

DOWNLOADS = {
    "ratings.csv": "text/csv",
    "ratings.parquet": "application/vnd.apache.parquet",
    "participants.csv": "text/csv",
    "events.csv": "text/csv",
    "definition.yaml": "application/yaml",
}
# The analysis report may style itself inline; it never runs scripts.
REPORT_CSP = ("default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
              "font-src 'self' data:; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
THROTTLE_KEY = "mosplatform.login_throttle"
# Largest archive upload (request body) on /admin/uploads; other routes keep
# MAX_CONTENT_LENGTH. Override with UPLOAD_MAX_BYTES (MOSPLATFORM_UPLOAD_MAX_BYTES).
UPLOAD_MAX_BYTES = 2 * 1024**3
# Failed logins allowed from one address over all usernames, as a multiple of the
# per-username limit (stops spraying one password over many names).
ADDRESS_LIMIT_FACTOR = 5


# --------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------


@login_manager.user_loader
def load_user(user_id: str) -> AdminUser | None:
    """The admin whose id Flask-Login stored in the session."""
    if not str(user_id).isdigit():
        return None
    return db.session.get(AdminUser, int(user_id))


@login_manager.unauthorized_handler
def unauthorized():  # type: ignore[no-untyped-def]
    if _wants_json():
        return jsonify(error="log in as an admin first", status=401), 401
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("admin.login", next=safe_next(target)))


def _wants_json() -> bool:
    return request.path.endswith(".json") or request.accept_mimetypes.best == "application/json"


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirects).

    Parameters
    ----------
    target : str or None
        The ``next`` parameter of the login page.

    Returns
    -------
    str or None
    """
    if not target or len(target) > 2000:
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    if re.search(r"[\\\x00-\x1f\x7f]", target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _user() -> AdminUser:
    user = current_user._get_current_object()  # the proxy is not an AdminUser
    if not isinstance(user, AdminUser):
        abort(401)
    return user


@bp.before_request
def _require_admin():  # type: ignore[no-untyped-def]
    # Flask-Login caches the user on ``g``, which lives as long as the app context; load
    # it from this request's session even when a context outlives requests (tests).
    g.pop("_login_user", None)
    if request.endpoint == "admin.login":
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def _throttles() -> tuple[LoginThrottle, LoginThrottle]:
    """Failed-login windows per (username, address) and per address, for this app."""
    ext = current_app.extensions
    if THROTTLE_KEY not in ext:
        limit = int(current_app.config.get("LOGIN_RATE_LIMIT", 10))
        ext[THROTTLE_KEY] = (LoginThrottle(limit=limit),
                             LoginThrottle(limit=limit * ADDRESS_LIMIT_FACTOR))
    return ext[THROTTLE_KEY]


@bp.route("/login", methods=["GET", "POST"], endpoint="login")
def login_page():  # type: ignore[no-untyped-def]
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("admin.index"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        per_user, per_address = _throttles()
        address = request.remote_addr or "unknown"
        user_key = f"{form.username.data.strip().lower()}|{address}"
        if per_user.blocked(user_key) or per_address.blocked(address):
            resp = render_template("admin/login.html", form=form, next_url=next_url,
                                   error="Too many failed attempts. Wait a few minutes and "
                                         "try again.")
            return resp, 429, {"Retry-After": str(int(per_user.window_s))}
        user = authenticate(form.username.data.strip(), form.password.data)
        if user is None:
            per_user.failure(user_key)
            per_address.failure(address)
            return render_template("admin/login.html", form=form, next_url=next_url,
                                   error="Unknown username or wrong password."), 401
        per_user.reset(user_key)
        login_user(user)
        return redirect(next_url or url_for("admin.index"))
    if request.method == "POST":
        status = 400
    return render_template("admin/login.html", form=form, next_url=next_url, error=None), status


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("admin.login"))


@bp.app_template_filter("admin_time")
def admin_time(value: datetime | None) -> str:
    """A stored time as ``YYYY-MM-DD HH:MM:SS UTC`` (SQLite hands back naive UTC)."""
    if value is None:
        return "—"
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


def _test_for(test_id: int, edit: bool = False) -> Test:
    test = db.session.get(Test, test_id)
    user = _user()
    if test is None or not can_view(user, test):
        abort(404, description="No such test.")
    if edit and not can_edit(user, test):
        abort(403, description="Only the owner of this test can change it.")
    return test


def _participant_for(test: Test, participant_id: int) -> Participant:
    participant = db.session.get(Participant, participant_id)
    if participant is None or participant.test_id != test.id:
        abort(404, description="No such participant in this test.")
    return participant


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    user = _user()
    tests = db.session.execute(visible_tests_query(user)).scalars().all()
    rows = [{"test": t, "counts": dashboard.participant_counts(t), "mine": t.owner_id == user.id}
            for t in tests]
    return render_template("admin/index.html", rows=rows)


def _import_root() -> Path:
    """Folder that relative audio paths in an uploaded or pasted definition start from."""
    return Path(current_app.config.get("IMPORT_ROOT") or Path.cwd()).resolve()


def _definition_text(form: NewTestForm) -> tuple[str | None, str, list[str]]:
    """The YAML text of the form, where it came from, and problems reading it."""
    upload = form.definition_file.data
    pasted = (form.definition_text.data or "").strip()
    if upload and getattr(upload, "filename", ""):
        name = Path(upload.filename).name or "upload.yaml"
        raw = upload.read()
        if pasted:
            return None, name, ["give either a file or pasted text, not both"]
        if b"\x00" in raw:
            return None, name, ["the file is not a text (YAML) file"]
        try:
            return raw.decode("utf-8-sig"), name, []
        except UnicodeDecodeError:
            return None, name, ["the file is not UTF-8 text"]
    if pasted:
        return pasted, "pasted definition", []
    return None, "", ["upload a YAML definition file or paste its text"]


@bp.route("/tests/new", methods=["GET", "POST"])
def new_test():  # type: ignore[no-untyped-def]
    form = NewTestForm()
    problems: list[str] = []
    source = ""
    status = 200
    if form.validate_on_submit():
        text, source, problems = _definition_text(form)
        if text is not None:
            try:
                definition = parse_definition_text(text, source, base_dir=_import_root())
            except DefinitionError as exc:
                problems = list(exc.problems)
            else:
                try:
                    from ..services.importer import ImportProblems, create_test
                except ImportError as exc:
                    abort(503, description=f"The stimulus importer is not available ({exc}); "
                                           "use `mosplatform create-test` instead.")
                try:
                    test = create_test(definition, owner=_user(),
                                       open_now=bool(form.open_now.data),
                                       compute_sdr=bool(form.compute_sdr.data), progress=False)
                except ImportProblems as exc:
                    db.session.rollback()
                    problems = list(exc.problems)
                else:
                    flash(f"Test '{test.name}' created ({test.status}).", "success")
                    return redirect(url_for("admin.test_detail", test_id=test.id))
        status = 422
    elif request.method == "POST":
        problems = [f"{form[name].label.text}: {'; '.join(errs)}"
                    for name, errs in form.errors.items() if name in form]
        problems += [e for name, errs in form.errors.items() if name not in form for e in errs]
        status = 400
    return render_template("admin/new_test.html", form=form, problems=problems,
                           source=source), status


def _arrival_url(test: Test) -> str:
    base = current_app.config.get("PUBLIC_URL")
    path = url_for("participant.arrive", public_id=test.public_id)
    if base:
        return base.rstrip("/") + path
    return url_for("participant.arrive", public_id=test.public_id, _external=True)


@bp.get("/tests/<int:test_id>")
def test_detail(test_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id)
    user = _user()
    return render_template(
        "admin/test_detail.html", test=test, editable=can_edit(user, test),
        actions=operations.available_actions(test), counts=dashboard.participant_counts(test),
        links=operations.crowd_links(test, _arrival_url(test)),
        collaborators=[c.user for c in test.collaborators],
        warnings=(test.settings or {}).get("import_warnings") or [],
        downloads=list(DOWNLOADS), collaborator_form=CollaboratorForm())


@bp.post("/tests/<int:test_id>/status")
def test_status(test_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id, edit=True)
    form = StatusForm()
    if not form.validate_on_submit():
        abort(400, description="Unknown status action.")
    try:
        new_status = operations.change_status(test, form.action.data)
    except operations.OperationError as exc:
        flash(str(exc), "error")
    else:
        flash(f"The test is now {new_status}.", "success")
    return redirect(url_for("admin.test_detail", test_id=test.id))


@bp.post("/tests/<int:test_id>/duplicate")
def test_duplicate(test_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id, edit=True)
    copy = operations.duplicate_test(test, _user())
    flash(f"Created '{copy.name}' as a draft: same definition and stimuli, no participants.",
          "success")
    return redirect(url_for("admin.test_detail", test_id=copy.id))


@bp.post("/tests/<int:test_id>/preview")
def test_preview(test_id: int):  # type: ignore[no-untyped-def]
    from ..participant.views import remember

    test = _test_for(test_id)
    languages = (test.definition or {}).get("languages") or ["en"]
    try:
        participant = admit_participant(test, Arrival(
            is_preview=True, language=languages[0],
            user_agent=request.headers.get("User-Agent")))
    except AssignmentError as exc:
        db.session.rollback()
        flash(f"Cannot preview: {exc}", "error")
        return redirect(url_for("admin.test_detail", test_id=test.id))
    remember(participant)
    return redirect(url_for("participant.resume", token=participant.token))


@bp.post("/tests/<int:test_id>/collaborators")
def collaborator_add(test_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id, edit=True)
    form = CollaboratorForm()
    if not form.validate_on_submit():
        flash("Give the username of an admin.", "error")
    else:
        try:
            user = operations.add_collaborator(test, form.username.data)
        except operations.OperationError as exc:
            flash(str(exc), "error")
        else:
            flash(f"{user.username} can now view this test.", "success")
    return redirect(url_for("admin.test_detail", test_id=test.id))


@bp.post("/tests/<int:test_id>/collaborators/<int:user_id>/remove")
def collaborator_remove(test_id: int, user_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id, edit=True)
    try:
        user = operations.remove_collaborator(test, user_id)
    except operations.OperationError as exc:
        flash(str(exc), "error")
    else:
        flash(f"{user.username} no longer has access.", "success")
    return redirect(url_for("admin.test_detail", test_id=test.id))


# --------------------------------------------------------------------------------------
# Progress and participants
# --------------------------------------------------------------------------------------


@bp.get("/tests/<int:test_id>/progress")
def test_progress(test_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id)
    return render_template("admin/progress.html", test=test,
                           summary=dashboard.progress_summary(test),
                           fill_class=fill_class)


@bp.get("/tests/<int:test_id>/progress.json")
def test_progress_json(test_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id)
    return jsonify(dashboard.progress_summary(test))


def fill_class(votes: int, target: int) -> str:
    """CSS class of a heatmap cell: ``fill-0`` .. ``fill-10`` by tenths of the target,
    ``fill-over`` past it (styles live in admin.css; the CSP forbids inline styles)."""
    if target <= 0:
        return "fill-10"
    if votes > target:
        return "fill-over"
    return f"fill-{min(10, int(10 * votes / target))}"


@bp.get("/tests/<int:test_id>/participants")
def participants(test_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id)
    show_preview = request.args.get("preview") == "1"
    page = max(1, request.args.get("page", 1, type=int) or 1)
    rows, total = dashboard.participant_rows(test, include_preview=show_preview,
                                             limit=PARTICIPANTS_PER_PAGE,
                                             offset=(page - 1) * PARTICIPANTS_PER_PAGE)
    pages = max(1, -(-total // PARTICIPANTS_PER_PAGE))
    return render_template("admin/participants.html", test=test, rows=rows, total=total,
                           page=page, pages=pages, show_preview=show_preview)


@bp.get("/tests/<int:test_id>/participants/<int:participant_id>")
def participant_detail(test_id: int, participant_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id)
    participant = _participant_for(test, participant_id)
    screening = [(k, dashboard.screening_passed(v), v)
                 for k, v in sorted((participant.screening or {}).items())]
    return render_template(
        "admin/participant.html", test=test, p=participant,
        editable=can_edit(_user(), test), answers=dashboard.participant_answers(participant),
        events=dashboard.participant_events(participant), screening=screening,
        trials=participant.trials, form=ExclusionForm(),
        trial_numbers={t.id: t.position + 1 for t in participant.trials})


@bp.post("/tests/<int:test_id>/participants/<int:participant_id>/exclusion")
def participant_exclusion(test_id: int, participant_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id, edit=True)
    participant = _participant_for(test, participant_id)
    form = ExclusionForm()
    if not form.validate_on_submit():
        flash("Choose exclude or include and give a reason.", "error")
    else:
        try:
            operations.set_exclusion(participant, form.action.data == "exclude",
                                     form.reason.data, _user())
        except operations.OperationError as exc:
            flash(str(exc), "error")
        else:
            flash(f"Participant {form.action.data}d.", "success")
    return redirect(url_for("admin.participant_detail", test_id=test.id,
                            participant_id=participant.id))


# --------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------


def _slug(test: Test) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", test.name).strip("-").lower()[:40]
    return f"{slug or 'test'}-{test.public_id}"


def _preview_prefixes(test: Test) -> set[str]:
    # The export names participants by the first 12 characters of their token.
    return {p.token[:12] for p in test.participants if p.is_preview}


@bp.get("/tests/<int:test_id>/download/<name>")
def download(test_id: int, name: str):  # type: ignore[no-untyped-def]
    test = _test_for(test_id)
    if name not in DOWNLOADS:
        abort(404, description=f"Unknown download; choose one of {', '.join(DOWNLOADS)}.")
    buf = io.BytesIO()
    if name == "definition.yaml":
        buf.write(yaml.safe_dump(test.definition, sort_keys=False,
                                 allow_unicode=True).encode("utf-8"))
    elif name.startswith("ratings."):
        df = ratings_frame(test)
        if name.endswith(".parquet"):
            try:
                df.to_parquet(buf, index=False)
            except ImportError:
                abort(503, description="Parquet export needs pyarrow on the server.")
        else:
            buf.write(df.to_csv(index=False).encode("utf-8"))
    elif name == "participants.csv":
        buf.write(participants_frame(test).to_csv(index=False).encode("utf-8"))
    else:
        df = events_frame(test)
        previews = _preview_prefixes(test)
        if previews and len(df):
            df = df[~df["participant"].isin(previews)]
        buf.write(df.to_csv(index=False).encode("utf-8"))
    buf.seek(0)
    return send_file(buf, mimetype=DOWNLOADS[name], as_attachment=True,
                     download_name=f"{_slug(test)}-{name}", max_age=0)


def _build_report(test: Test, out_dir: Path) -> Path:
    """Write the analysis report of ``test`` into ``out_dir``; returns report.html."""
    try:
        from ..analysis import build_report
    except ImportError as exc:
        abort(503, description="The analysis report is not available on this server "
                               f"(mosplatform.analysis cannot be imported: {exc}).")
    ratings = ratings_frame(test)
    if ratings.empty:
        abort(409, description="There are no ratings to analyse yet.")
    try:
        out = Path(build_report(ratings, out_dir, definition=test.definition, title=test.name))
    except ValueError as exc:
        abort(422, description=f"The report could not be built: {exc}")
    return out if out.is_file() else out / "report.html"


@bp.get("/tests/<int:test_id>/report")
def report(test_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id)
    with tempfile.TemporaryDirectory(prefix="mosplatform-report-") as tmp:
        html = _build_report(test, Path(tmp)).read_text(encoding="utf-8")
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = REPORT_CSP
    return resp


@bp.get("/tests/<int:test_id>/report.zip")
def report_zip(test_id: int):  # type: ignore[no-untyped-def]
    test = _test_for(test_id)
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="mosplatform-report-") as tmp:
        root = _build_report(test, Path(tmp)).parent
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    zf.write(path, f"report/{path.relative_to(root)}")
    buf.seek(0)
    return send_file(buf, mimetype="application/zip", as_attachment=True,
                     download_name=f"{_slug(test)}-report.zip", max_age=0)


# --------------------------------------------------------------------------------------
# Audio uploads
# --------------------------------------------------------------------------------------


def _uploads_root(user: AdminUser) -> Path:
    """This admin's upload folder: instance/uploads/<user id> (admins never share one)."""
    return Path(current_app.instance_path) / "uploads" / str(int(user.id))


def _upload_limit() -> int:
    return int(current_app.config.get("UPLOAD_MAX_BYTES", UPLOAD_MAX_BYTES))


@bp.route("/uploads", methods=["GET", "POST"])
@csrf.exempt  # the form checks its token itself, after the larger body limit is set
def uploads():  # type: ignore[no-untyped-def]
    user = _user()
    root = _uploads_root(user)
    problems: list[str] = []
    status = 200
    form: UploadForm
    if request.method == "POST":
        limit = _upload_limit()
        if request.content_length is not None and request.content_length > limit:
            abort(413, description=f"The upload is over {limit} bytes (UPLOAD_MAX_BYTES).")
        # Raise Flask's MAX_CONTENT_LENGTH for this request only (also bounds chunked bodies).
        request.max_content_length = limit
        form = UploadForm()
        if form.validate_on_submit():
            upload = form.archive.data
            try:
                result = upload_service.extract_audio_archive(
                    upload.stream, root,
                    max_files=int(current_app.config.get("UPLOAD_MAX_FILES",
                                                         upload_service.DEFAULT_MAX_FILES)),
                    max_total_bytes=int(current_app.config.get(
                        "UPLOAD_MAX_TOTAL_BYTES", upload_service.DEFAULT_MAX_TOTAL_BYTES)),
                    max_file_bytes=int(current_app.config.get(
                        "UPLOAD_MAX_FILE_BYTES", upload_service.DEFAULT_MAX_FILE_BYTES)),
                    max_ratio=float(current_app.config.get(
                        "UPLOAD_MAX_RATIO", upload_service.DEFAULT_MAX_RATIO)))
            except upload_service.UploadError as exc:
                problems = [str(exc)]
                status = 422
            else:
                n_tracks = sum(len(t) for t in result.tracks.values())
                flash(f"Uploaded {len(result.files)} files ({n_tracks} tracks) into "
                      f"{result.name}.", "success")
                return redirect(url_for("admin.uploads", folder=result.name))
        else:
            problems = [e for errs in form.errors.values() for e in errs]
            status = 400
    else:
        form = UploadForm()
    previous = upload_service.list_uploads(root)
    shown = None
    wanted = request.args.get("folder")
    if wanted:
        shown = next((u for u in previous if u.name == wanted), None)
        if shown is None:
            abort(404, description="No such upload.")
    snippet = (upload_service.definition_snippet(shown.folder.resolve(), shown.tracks)
               if shown else None)
    return render_template("admin/uploads.html", form=form, problems=problems,
                           uploads=previous, shown=shown, snippet=snippet,
                           limit=_upload_limit()), status
