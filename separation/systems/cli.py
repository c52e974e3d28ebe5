"""Click commands of the further systems: ``train-system``, ``render-system``, ``speech-data``.

``mosplatform`` (or any click group) registers :data:`train_system_command`,
:data:`render_system_command` and :data:`speech_data_command`.  torch is imported only
inside the command bodies, so importing this module stays cheap and torch-free.
"""

from __future__ import annotations

import json

import click

SYSTEM_NAMES = ["unet", "query", "tagbox"]


@click.command("train-system")
@click.argument("system", type=click.Choice(SYSTEM_NAMES))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="MUSDB-layout root (train/<track>/<source>.wav); for --task speech, a "
                   "folder written by speech-data.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run folder; the checkpoint is <out>/<system>.pt.")
@click.option("--preset", default="small", show_default=True,
              help="small (CPU, minutes) or default (the papers' sizes).")
@click.option("--task", type=click.Choice(["vocals", "speech"]), default="vocals",
              show_default=True, help="unet: vocals vs accompaniment, or speech vs music.")
@click.option("--holdout", default="bass", show_default=True,
              help="query: class kept out of separator training ('none' for none).")
@click.option("--steps", type=int, default=None,
              help="Main training steps (unet; query separator; tagbox autoencoder).")
@click.option("--detector-steps", type=int, default=None,
              help="query: detector steps; tagbox: tagger steps.")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def train_system_command(system: str, data: str, out: str, preset: str, task: str,
                         holdout: str, steps: int | None, detector_steps: int | None,
                         batch_size: int, lr: float, seed: int) -> None:
    """Train the U-Net mask, the query-based separator, or the TAGBOX models."""
    common = dict(data=data, out=out, preset=preset, batch_size=batch_size, lr=lr, seed=seed)
    if system == "unet":
        from .unet_train import UNetTrainConfig, train_unet

        config = UNetTrainConfig(task=task, **common)
        if steps is not None:
            config.steps = steps
        result = train_unet(config)
        summary = {"final_loss": sum(result["losses"][-20:]) / max(1, len(result["losses"][-20:]))}
    elif system == "query":
        from .query_train import QueryTrainConfig, train_query

        config = QueryTrainConfig(holdout=None if holdout.lower() == "none" else holdout,
                                  **common)
        if steps is not None:
            config.sep_steps = steps
        if detector_steps is not None:
            config.sed_steps = detector_steps
        result = train_query(config)
        summary = {"tagging_accuracy": result["tagging_accuracy"]}
    else:
        from .tagbox_steer import TagboxTrainConfig, train_tagbox

        config = TagboxTrainConfig(**common)
        if steps is not None:
            config.ae_steps = steps
        if detector_steps is not None:
            config.tagger_steps = detector_steps
        result = train_tagbox(config)
        summary = {"tagging_accuracy": result["tagging_accuracy"]}
    summary.update(checkpoint=str(result["checkpoint"]), seconds=round(result["seconds"], 1))
    click.echo(json.dumps(summary))


@click.command("render-system")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(exists=True),
              help="Audio file, track folder, folder of tracks/files, or data set root (test/).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Writes <out>/<track>/<source>.wav.")
@click.option("--source", "sources", multiple=True,
              help="Stem to render (repeatable; default all): query classes, tagbox tags.")
@click.option("--steps", type=int, default=None, help="tagbox: steering steps.")
@click.option("--float", "as_float", is_flag=True, help="Write 32-bit float WAV.")
def render_system_command(checkpoint: str, input_path: str, out: str,
                          sources: tuple[str, ...], steps: int | None, as_float: bool) -> None:
    """Render stems of a unet, query or tagbox checkpoint."""
    from .render import SystemRenderer

    renderer = SystemRenderer(checkpoint, sources=list(sources) or None, steps=steps)
    rows = renderer.render(input_path, out, "FLOAT" if as_float else "PCM_16")
    for r in rows:
        click.echo(f"{r['track']}: {r['audio_seconds']:.1f} s audio in {r['seconds']:.2f} s "
                   f"(RTF {r['rtf']:.3f}) -> {', '.join(sorted(r['files']))}")


@click.command("speech-data")
@click.option("--music", required=True, type=click.Path(exists=True, file_okay=False),
              help="MUSDB-layout root whose mixtures are the background music.")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-tracks", type=int, default=None)
def speech_data_command(music: str, out: str, seed: int, max_tracks: int | None) -> None:
    """Write espeak-ng speech over music (train|test/<track>/{mixture,speech,music}.wav)."""
    from .speech import generate_speech_dataset

    path = generate_speech_dataset(music, out, seed=seed, max_tracks=max_tracks)
    click.echo(f"speech-over-music data in {path}")


@click.group("systems")
def cli() -> None:
    """U-Net mask, query-based zero-shot separation, TAGBOX steering."""


cli.add_command(train_system_command)
cli.add_command(render_system_command)
cli.add_command(speech_data_command)
