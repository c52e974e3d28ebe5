"""Flask-WTF forms of the dashboard; every one carries a CSRF token.

Buttons that send nothing but the token (logout, preview, duplicate, remove) use a
plain ``csrf_token()`` hidden input, which the app-wide CSRFProtect checks.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired, FileSize
from wtforms import BooleanField, HiddenField, PasswordField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

MAX_DEFINITION_BYTES = 1024 * 1024


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class NewTestForm(FlaskForm):
    definition_file = FileField(
        "Definition file (YAML)",
        validators=[Optional(), FileSize(MAX_DEFINITION_BYTES,
                                         message="the definition file is over 1 MiB")])
    definition_text = TextAreaField(
        "or paste the definition",
        validators=[Optional(), Length(max=MAX_DEFINITION_BYTES)])
    open_now = BooleanField("Open for participants right away")
    compute_sdr = BooleanField("Compute SDR and SI-SDR of every stimulus", default=True)


class StatusForm(FlaskForm):
    action = HiddenField(validators=[DataRequired(), AnyOf(["open", "pause", "close"])])


class CollaboratorForm(FlaskForm):
    username = StringField("Admin username", validators=[DataRequired(), Length(max=80)])


class ExclusionForm(FlaskForm):
    action = HiddenField(validators=[DataRequired(), AnyOf(["exclude", "include"])])
    reason = StringField("Reason", validators=[DataRequired(), Length(max=500)])


class UploadForm(FlaskForm):
    archive = FileField("Archive of audio files (.zip, .tar, .tar.gz)",
                        validators=[FileRequired(message="choose an archive to upload")])
