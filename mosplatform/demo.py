"""`mosplatform demo`: make the demo material and tests once, then reuse them.

Steps (each cached under ``instance/demo/`` and skipped when already done):

1. a music-like multitrack set in the MUSDB18-HQ layout, rendered from MIDI
   (:mod:`mosplatform.demodata`);
2. the three loss variants of the study (``l1``, ``l1_stft``, ``l1_stft_adv``),
   tiny Hybrid Demucs presets trained on the demo training tracks, rendering stems
   of the test tracks; each in a subprocess so this process never imports torch;
3. the database (migrations), a demo admin account, and two open tests built from
   ``examples/mushra.yaml`` and ``examples/separation_mos.yaml``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import yaml

from . import create_app, resource_dir

VARIANTS = ("l1", "l1_stft", "l1_stft_adv")
# Tiny preset on the demo set (see BENCHMARKS.md for the SDR each reaches against the
# mixture baseline). The study's Adam betas with a larger learning rate, so that a few
# CPU minutes are enough; the STFT variants need more steps than L1 to leave the
# near-silent start (the log-magnitude term first matches the stems' silent parts).
TRAIN_ARGS = ["--preset", "tiny", "--epochs", "16", "--samples-per-epoch", "32",
              "--segment", "1", "--lr", "3e-3", "--disc-channels", "8",
              "--disc-max-channels", "128", "--valid-seconds", "10", "--seed", "0",
              "--threads", "1"]
# The other system families (issue 9): small presets, trained without a GPU in minutes.
# name -> (train-system arguments, render-system arguments, checkpoint file)
OTHER_SYSTEMS = {
    "unet": (["unet", "--preset", "small", "--task", "vocals"], [], "unet.pt"),
    "query": (["query", "--preset", "small", "--holdout", "bass"], ["--source", "vocals"],
              "query.pt"),
    "tagbox": (["tagbox", "--preset", "small"], ["--source", "vocals"], "tagbox.pt"),
}
DEMO_TESTS = {"MUSHRA": "mushra.yaml", "separation MOS": "separation_mos.yaml",
              "all systems (vocals)": "all_systems.yaml"}
ADMIN_USER = "demo"


def _run_jobs(jobs: list[tuple[str, list[str]]], logs: Path) -> None:
    """Run commands as parallel subprocesses, one torch thread each, one per core."""
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    limit = max(1, os.cpu_count() or 1)
    pending = list(jobs)
    running: list[tuple[str, subprocess.Popen[bytes], float, Path]] = []
    failed: list[str] = []
    while pending or running:
        while pending and len(running) < limit:
            name, cmd = pending.pop(0)
            log = logs / f"{name.replace(' ', '_')}.log"
            click.echo(f"  {name}: started (log: {log})")
            proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                    env=env)
            running.append((name, proc, time.monotonic(), log))
        time.sleep(1.0)
        for entry in list(running):
            name, proc, started, log = entry
            if proc.poll() is None:
                continue
            running.remove(entry)
            took = time.monotonic() - started
            if proc.returncode == 0:
                click.echo(f"  {name}: done in {took:.0f} s")
            else:
                failed.append(name)
                click.secho(f"  {name}: failed (exit {proc.returncode}); see {log}", fg="red")
    if failed:
        raise click.ClickException(f"demo preparation failed: {', '.join(failed)}")


def _torch_available() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    return probe.returncode == 0


def prepare_material(demo_dir: Path, quick: bool) -> list[str]:
    """Demo data and rendered stems; returns the system condition names available."""
    from .demodata import generate_demo_dataset

    musdb = demo_dir / "musdb"
    click.echo("demo data (rendered from MIDI; cached):")
    generate_demo_dataset(musdb, n_train=8, n_test=4, duration=20.0, sample_rate=44100, seed=0)
    if quick:
        return []
    if not _torch_available():
        click.secho("  torch is not installed: the demo uses the mixture and anchors only "
                    "(pip install 'mosplatform[separation]' for the trained systems)",
                    fg="yellow")
        return []
    base = [sys.executable, "-m", "mosplatform.cli"]
    train_jobs: list[tuple[str, list[str]]] = []
    render_jobs: list[tuple[str, list[str]]] = []
    for variant in VARIANTS:
        stems, run_dir = demo_dir / "stems" / variant, demo_dir / "runs" / variant
        if (stems / ".complete").exists():
            continue
        if not (run_dir / ".trained").exists():
            train_jobs.append((f"train {variant}", base + [
                "train", "--variant", variant, "--data", str(musdb), "--out", str(run_dir),
                *TRAIN_ARGS]))
        render_jobs.append((f"render {variant}", base + [
            "separate", "--checkpoint", str(run_dir / "best.pt"), "--input",
            str(musdb / "test"), "--out", str(stems), "--threads", "1"]))
    for name, (train_args, render_args, ckpt) in OTHER_SYSTEMS.items():
        stems, run_dir = demo_dir / "stems" / name, demo_dir / "runs" / name
        if (stems / ".complete").exists():
            continue
        if not (run_dir / ckpt).exists():
            train_jobs.append((f"train {name}", base + [
                "train-system", *train_args, "--data", str(musdb), "--out", str(run_dir)]))
        render_jobs.append((f"render {name}", base + [
            "render-system", "--checkpoint", str(run_dir / ckpt), "--input",
            str(musdb / "test"), "--out", str(stems), *render_args]))
    if train_jobs:
        click.echo("training the demo systems (first run only; a few minutes per system):")
        _run_jobs(train_jobs, demo_dir / "logs")
        for variant in VARIANTS:
            if (demo_dir / "runs" / variant / "best.pt").exists():
                (demo_dir / "runs" / variant / ".trained").touch()
    if render_jobs:
        click.echo("rendering stems of the test tracks:")
        _run_jobs(render_jobs, demo_dir / "logs")
        for name, _ in render_jobs:
            (demo_dir / "stems" / name.split()[1] / ".complete").touch()
    return list(VARIANTS) + list(OTHER_SYSTEMS)


def demo_definition(name: str, demo_dir: Path, systems: list[str]) -> dict[str, Any]:
    """An example definition pointed at the demo material."""
    data = yaml.safe_load((resource_dir("examples") / name).read_text(encoding="utf-8"))
    data["stimuli"]["reference"] = str(demo_dir / "musdb" / "test")
    conditions = []
    for c in data["conditions"]:
        if c.get("folder"):
            if c["key"] not in systems:
                continue
            c["folder"] = str(demo_dir / "stems" / c["key"])
        conditions.append(c)
    if not systems:
        conditions.append({"key": "mixture", "role": "mixture",
                           "description": "the unprocessed mixture (no separation)"})
    data["conditions"] = conditions
    data["name"] = f"[demo] {data['name']}"
    return data


def prepare_demo(quick: bool = False) -> dict[str, Any]:
    """Prepare everything the demo serves; returns links and credentials."""
    app = create_app()
    demo_dir = Path(app.instance_path) / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    systems = prepare_material(demo_dir, quick)
    with app.app_context():
        from flask_migrate import upgrade

        from .config import parse_definition
        from .extensions import db
        from .models import AdminUser, Test
        from .services.accounts import create_admin, hash_password
        from .services.importer import create_test

        upgrade(directory=str(resource_dir("migrations")))
        pw_file = demo_dir / "admin_password"
        if not pw_file.exists():
            pw_file.write_text(secrets.token_urlsafe(12))
            os.chmod(pw_file, 0o600)
        password = pw_file.read_text().strip()
        user = db.session.execute(
            db.select(AdminUser).where(AdminUser.username == ADMIN_USER)).scalar_one_or_none()
        if user is None:
            user = create_admin(ADMIN_USER, password, superuser=True)
        else:
            user.password_hash = hash_password(password)
            db.session.commit()
        state_file = demo_dir / "tests.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        key = ",".join(systems) or "mixture"
        tests: dict[str, str] = {}
        for label, example in DEMO_TESTS.items():
            known = state.get(f"{label}|{key}")
            if known and db.session.execute(
                    db.select(Test).where(Test.public_id == known)).scalar_one_or_none():
                tests[label] = known
                continue
            click.echo(f"creating the {label} test (preparing stimuli, computing SDR)...")
            definition = parse_definition(demo_definition(example, demo_dir, systems), example)
            test = create_test(definition, owner=user, open_now=True, progress=True)
            tests[label] = test.public_id
            state[f"{label}|{key}"] = test.public_id
        state_file.write_text(json.dumps(state, indent=2))
    return {"tests": tests, "admin_user": ADMIN_USER, "admin_password": password}
