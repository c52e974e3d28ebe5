"""Command-line interface: ``train`` and ``separate`` click commands.

``mosplatform`` registers :data:`train_command` and :data:`separate_command` in its
group; ``python -m separation`` runs :data:`cli`. torch is imported only inside the
command bodies, so importing this module is cheap and torch-free.
"""

from __future__ import annotations

import json
import sys

import click

VARIANT_NAMES = ["l1", "l1_stft", "l1_stft_adv"]


@click.command("train")
@click.option("--variant", type=click.Choice(VARIANT_NAMES), default="l1_stft", show_default=True,
              help="Loss variant.")
@click.option("--data", "data", required=True, type=click.Path(exists=True, file_okay=False),
              help="MUSDB18-HQ-layout root (train/<track>/<source>.wav).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option("--model", default="hdemucs", show_default=True, help="Registered model name.")
@click.option("--preset", default="tiny", show_default=True, help="Model preset.")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--segment", type=float, default=None, help="Training segment in seconds.")
@click.option("--samples-per-epoch", type=int, default=400, show_default=True)
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--grad-clip", type=float, default=0.0, show_default=True, help="0 = off.")
@click.option("--ema", "ema_decay", type=float, default=0.0, show_default=True,
              help="EMA decay per step, 0 = off.")
@click.option("--lambda-stft", type=float, default=None, help="Override the variant's weight.")
@click.option("--lambda-adv", type=float, default=None, help="Override the variant's weight.")
@click.option("--adv-start-epoch", type=int, default=None)
@click.option("--disc-channels", type=int, default=16, show_default=True)
@click.option("--disc-max-channels", type=int, default=512, show_default=True)
@click.option("--valid-track", "valid_tracks", multiple=True,
              help="Held-out train track name (repeatable).")
@click.option("--valid-seconds", type=float, default=None,
              help="Validate on the first seconds of each track only.")
@click.option("--workers", type=int, default=0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--no-resume", is_flag=True, help="Ignore an existing last.pt.")
@click.option("--no-augment", is_flag=True)
@click.option("--set", "model_sets", multiple=True, metavar="KEY=JSON",
              help="Model constructor override, e.g. --set channels=16.")
def train_command(variant: str, data: str, out: str, model: str, preset: str, epochs: int,
                  batch_size: int, segment: float | None, samples_per_epoch: int, lr: float,
                  grad_clip: float, ema_decay: float, lambda_stft: float | None,
                  lambda_adv: float | None, adv_start_epoch: int | None, disc_channels: int,
                  disc_max_channels: int, valid_tracks: tuple[str, ...],
                  valid_seconds: float | None, workers: int, seed: int, device: str,
                  threads: int | None, no_resume: bool, no_augment: bool,
                  model_sets: tuple[str, ...]) -> None:
    """Train a separation model (works under torchrun for DDP)."""
    from .train import TrainConfig, train

    model_kwargs = {}
    for item in model_sets:
        key, _, value = item.partition("=")
        model_kwargs[key] = json.loads(value)
    config = TrainConfig(
        data=data, out=out, variant=variant, model=model, preset=preset,
        model_kwargs=model_kwargs, epochs=epochs, batch_size=batch_size, segment=segment,
        samples_per_epoch=samples_per_epoch, lr=lr, grad_clip=grad_clip, ema_decay=ema_decay,
        lambda_stft=lambda_stft, lambda_adv=lambda_adv, adv_start_epoch=adv_start_epoch,
        disc_channels=disc_channels, disc_max_channels=disc_max_channels,
        valid_tracks=list(valid_tracks) or None, valid_seconds=valid_seconds,
        workers=workers, seed=seed, device=device, threads=threads, resume=not no_resume,
        augment=not no_augment)
    summary = train(config)
    if summary["history"]:
        click.echo(f"best validation SDR {summary['best_valid_sdr']:.2f} dB "
                   f"(mixture baseline {summary['baseline_sdr']}); checkpoints in {out}")


@click.command("separate")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(exists=True),
              help="Audio file, MUSDB track folder list, or folder of audio files.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Writes <out>/<track>/<source>.wav.")
@click.option("--device", default="auto", show_default=True)
@click.option("--segment", type=float, default=None, help="Chunk seconds (default: training).")
@click.option("--overlap", type=float, default=0.25, show_default=True)
@click.option("--shifts", type=int, default=0, show_default=True)
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--float", "as_float", is_flag=True, help="Write 32-bit float WAV.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
def separate_command(checkpoint: str, input_path: str, out: str, device: str,
                     segment: float | None, overlap: float, shifts: int, batch_size: int,
                     as_float: bool, threads: int | None) -> None:
    """Separate a file or every track of a folder into stems."""
    from pathlib import Path

    import torch

    from .api import Separator, total_rtf

    if threads:
        torch.set_num_threads(threads)
    sep = Separator(checkpoint, device=device, segment=segment, overlap=overlap,
                    shifts=shifts, batch_size=batch_size)
    subtype = "FLOAT" if as_float else "PCM_16"
    path = Path(input_path)
    if path.is_dir():
        results = sep.separate_folder(path, out, subtype=subtype)
    else:
        results = [sep.separate_file(path, out, subtype=subtype)]
    for r in results:
        click.echo(f"{r.name}: {r.audio_seconds:.1f} s audio in {r.seconds:.2f} s "
                   f"(RTF {r.rtf:.3f}) -> {r.out_dir}")
    click.echo(f"{len(results)} track(s), real-time factor {total_rtf(results):.3f} "
               f"on {sep.device}")


@click.group("separation")
def cli() -> None:
    """Music source separation (Hybrid Demucs under three loss variants)."""


cli.add_command(train_command)
cli.add_command(separate_command)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="separation")
