"""The ``mosplatform`` command line: one click group, each area adds its commands.

Commands that need the application (database, media folder) run inside
:func:`create_app`'s context; the heavy areas (metrics, separation, analysis) are
imported only when their command runs, so ``mosplatform --help`` stays fast and
torch is never imported by the web app.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

# name -> (module, attribute) of commands defined by other areas, loaded on demand.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "sdr": ("mosplatform.metrics.cli", "sdr_command"),
    "report": ("mosplatform.analysis.cli", "report_command"),
    "demo-data": ("mosplatform.demodata", "demo_data_command"),
    "train": ("separation.cli", "train_command"),
    "separate": ("separation.cli", "separate_command"),
    "train-system": ("separation.systems.cli", "train_system_command"),
    "render-system": ("separation.systems.cli", "render_system_command"),
    "speech-data": ("separation.systems.cli", "speech_data_command"),
}


class MosplatformGroup(FlaskGroup):
    """Flask's group (``db``, ``routes``, ``shell``) plus lazily imported area commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[name]
            try:
                return getattr(importlib.import_module(module), attr)
            except ImportError as exc:
                return _unavailable(name, exc)
        return super().get_command(ctx, name)


def _unavailable(name: str, exc: ImportError) -> click.Command:
    """A stand-in that explains which optional dependency the command needs."""
    missing = exc.name or str(exc)
    hint = " (pip install 'mosplatform[separation]')" if "torch" in missing else ""

    def run() -> None:
        raise click.ClickException(f"command '{name}' needs {missing}, which is not "
                                   f"installed{hint}")

    return click.Command(name, callback=run, help=f"(unavailable: needs {missing})",
                         context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})


def _create_app(*_: Any) -> Flask:
    from . import create_app

    return create_app()


@click.group(cls=MosplatformGroup, create_app=_create_app, add_version_option=False,
             set_debug_flag=False, load_dotenv=False)
@click.version_option(package_name="mosplatform")
def cli() -> None:
    """mosplatform: MUSHRA and MOS listening tests for audio source separation."""


def _echo_error(message: str) -> None:
    click.secho(message, fg="red", err=True)


@cli.command("init")
@with_appcontext
@click.option("--admin", "admin_name", default=None, help="Also create this admin user.")
@click.option("--password", default=None, help="Password for --admin (prompted if omitted).")
def init_command(admin_name: str | None, password: str | None) -> None:
    """Create or upgrade the database to the latest schema."""
    from flask_migrate import upgrade

    upgrade()
    click.echo("database is at the latest revision")
    if admin_name:
        from .services.accounts import create_admin

        create_admin(admin_name, password or click.prompt("password", hide_input=True,
                                                          confirmation_prompt=True))
        click.echo(f"admin '{admin_name}' created")


@cli.command("create-admin")
@with_appcontext
@click.argument("username")
@click.option("--password", default=None, help="Prompted if omitted.")
@click.option("--superuser", is_flag=True, help="May see every test.")
def create_admin_command(username: str, password: str | None, superuser: bool) -> None:
    """Create an admin account (password hashed with scrypt)."""
    from .services.accounts import AccountError, create_admin

    try:
        create_admin(username, password or click.prompt("password", hide_input=True,
                                                        confirmation_prompt=True),
                     superuser=superuser)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"admin '{username}' created")


@cli.command("create-test")
@with_appcontext
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--owner", default=None, help="Admin username that owns the test.")
@click.option("--open", "open_now", is_flag=True, help="Open the test for participants.")
@click.option("--sdr/--no-sdr", default=True, help="Compute SDR for stimuli with a reference.")
def create_test_command(config: str, owner: str | None, open_now: bool, sdr: bool) -> None:
    """Validate a YAML test definition, prepare its stimuli and create the test."""
    from .config import DefinitionError, load_definition
    from .services.importer import ImportProblems, create_test

    try:
        definition = load_definition(config)
    except DefinitionError as exc:
        _echo_error(f"invalid test definition {exc.source}:")
        for p in exc.problems:
            _echo_error(f"  - {p}")
        sys.exit(2)
    try:
        test = create_test(definition, owner=owner, open_now=open_now, compute_sdr=sdr,
                           progress=True)
    except ImportProblems as exc:
        _echo_error(f"cannot import the stimuli of {config}:")
        for p in exc.problems:
            _echo_error(f"  - {p}")
        sys.exit(2)
    click.echo(f"created test {test.id} '{test.name}' ({test.kind}, {len(test.items)} items, "
               f"{len(test.conditions)} conditions), status {test.status}")
    click.echo(f"participant link: /t/{test.public_id}")


@cli.command("export")
@with_appcontext
@click.argument("test_ref")
@click.option("--out", "out", type=click.Path(), required=True,
              help="File (.csv or .parquet) or a folder for all tables.")
@click.option("--include-preview", is_flag=True, help="Include preview participants.")
def export_command(test_ref: str, out: str, include_preview: bool) -> None:
    """Write the long-format ratings table of a test (id or public id)."""
    from .services.export import ExportError, export_test, resolve_test

    try:
        test = resolve_test(test_ref)
        written = export_test(test, Path(out), include_preview=include_preview)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    for path, rows in written:
        click.echo(f"wrote {rows} rows to {path}")


@cli.command("set-status")
@with_appcontext
@click.argument("test_ref")
@click.argument("status", type=click.Choice(["draft", "open", "paused", "closed"]))
def set_status_command(test_ref: str, status: str) -> None:
    """Open, pause or close a test."""
    from .extensions import db
    from .services.export import ExportError, resolve_test

    try:
        test = resolve_test(test_ref)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    test.status = status
    db.session.commit()
    click.echo(f"test {test.id} is now {status}")


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="Default: 2 x cores + 1.")
@click.option("--threads", default=None, type=int, help="Threads per worker (default 4).")
@click.option("--worker", default=None, type=click.Choice(["auto", "asgi"]),
              help="gunicorn worker (default SERVE_WORKER, auto): asgi is gunicorn's "
              "asyncio worker, one request at a time per process.")
@click.option("--dev", is_flag=True, help="Flask's development server with the reloader.")
@click.option("--access-log/--no-access-log", default=True)
def serve_command(host: str, port: int, workers: int | None, threads: int | None,
                  worker: str | None, dev: bool, access_log: bool) -> None:
    """Serve the application (gunicorn; --dev for the Flask reloader)."""
    from .serving import serve

    try:
        serve(host=host, port=port, workers=workers, threads=threads, dev=dev,
              access_log=access_log, worker=worker)
    except ValueError as exc:  # a setting out of range, named in the message
        raise click.ClickException(str(exc)) from exc


@cli.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--prepare-only", is_flag=True, help="Prepare material and tests, do not serve.")
@click.option("--quick", is_flag=True, help="Skip training; use anchors and mixture only.")
def demo_command(host: str, port: int, prepare_only: bool, quick: bool) -> None:
    """Prepare the demo material and tests (cached), then serve them."""
    from .demo import prepare_demo

    info = prepare_demo(quick=quick)
    base = f"http://{host}:{port}"
    click.secho("\nmosplatform demo is ready", fg="green", bold=True)
    for name, public_id in info["tests"].items():
        click.echo(f"  participant link ({name}): {base}/t/{public_id}")
    click.echo(f"  admin: {base}/admin/  user: {info['admin_user']}  "
               f"password: {info['admin_password']}")
    if prepare_only:
        return
    from .serving import serve

    serve(host=host, port=port, workers=2, threads=8, dev=False, access_log=False)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("FLASK_APP", "mosplatform:create_app")
    cli(prog_name="mosplatform")


if __name__ == "__main__":
    main()
