"""Training: each variant's loss goes down, outputs, exact resume, DDP smoke run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from separation_fixtures import SR, TINY

from separation.checkpoint import load_checkpoint
from separation.losses import (
    SeparationLoss,
    SourceDiscriminators,
    lsgan_discriminator_loss,
    variant_weights,
)
from separation.registry import build_model
from separation.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("variant", ["l1", "l1_stft", "l1_stft_adv"])
def test_few_steps_lower_the_loss(variant: str) -> None:
    torch.manual_seed(0)
    model = build_model("hdemucs", "tiny", **TINY)
    ref = torch.randn(1, 4, 2, 4800) * torch.tensor([0.3, 0.1, 0.2, 0.05])[None, :, None, None]
    mix = ref.sum(1)
    weights = variant_weights(variant)
    crit = SeparationLoss(weights, SR)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.9))
    disc = SourceDiscriminators(4, channels=4, max_channels=32) if weights.lambda_adv else None
    d_opt = torch.optim.Adam(disc.parameters(), 2e-4, betas=(0.5, 0.9)) if disc else None
    offsets = disc.random_offsets(4800) if disc else None

    def losses() -> tuple[float, float]:
        with torch.no_grad():
            est = model(mix)
            fake = disc(est, offsets) if disc else None
            d_loss = lsgan_discriminator_loss(disc(ref, offsets), fake) if disc else 0.0
            return crit(est, ref, fake).total.item(), float(d_loss)

    g_before, d_before = losses()
    for _ in range(4):
        est = model(mix)
        fake = None
        if disc is not None:
            d_loss = lsgan_discriminator_loss(disc(ref, offsets), disc(est.detach(), offsets))
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            fake = disc(est, offsets)
        opt.zero_grad()
        crit(est, ref, fake).total.backward()
        opt.step()
    g_after, d_after = losses()
    assert g_after < g_before
    if disc is not None:
        assert d_after < d_before


def _config(root: Path, out: Path, epochs: int) -> TrainConfig:
    return TrainConfig(
        data=str(root), out=str(out), variant="l1_stft_adv", preset="tiny", model_kwargs=TINY,
        epochs=epochs, batch_size=2, samples_per_epoch=4, adv_start_epoch=1, ema_decay=0.9,
        grad_clip=5.0, disc_channels=4, disc_max_channels=32, seed=7, device="cpu",
        progress=False)


def _strip_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "train_seconds"} for row in history]


def test_train_outputs_and_exact_resume(multitrack_root: Path, tmp_path: Path) -> None:
    straight = train(_config(multitrack_root, tmp_path / "a", epochs=2))
    assert (tmp_path / "a" / "best.pt").exists()
    rows = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"loss", "l1", "stft", "valid_sdr", "valid_sdr_vocals"} <= set(rows[0])
    assert "adv_d" not in rows[0] and "adv_g" in rows[1]  # adversarial from epoch 2
    header = (tmp_path / "a" / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,step")
    assert straight["baseline_sdr"] < 0  # the mixture is a poor estimate of one source

    train(_config(multitrack_root, tmp_path / "b", epochs=1))  # "interrupted" after 1
    resumed = train(_config(multitrack_root, tmp_path / "b", epochs=2))
    assert _strip_times(resumed["history"]) == _strip_times(straight["history"])
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    for key in ("state",):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), name
    for name, tensor in a["train_state"]["raw_state"].items():
        assert torch.equal(tensor, b["train_state"]["raw_state"][name]), name
    for name, tensor in a["train_state"]["disc"].items():
        assert torch.equal(tensor, b["train_state"]["disc"][name]), name
    best = load_checkpoint(tmp_path / "a" / "best.pt")
    assert best["meta"]["variant"] == "l1_stft_adv" and best["meta"]["sample_rate"] == SR
    assert "train_state" not in best


@pytest.mark.slow  # two fresh torch processes: ~20-60 s on the shared 2-core machine
def test_ddp_two_gloo_processes(multitrack_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "separation", "train", "--data", str(multitrack_root), "--out",
           str(tmp_path / "ddp"), "--variant", "l1_stft", "--preset", "tiny",
           "--set", f"sample_rate={SR}", "--set", "segment=0.6", "--epochs", "1",
           "--batch-size", "1", "--samples-per-epoch", "4", "--device", "cpu",
           "--threads", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    # 4 segments split over 2 ranks at batch 1: 2 synchronous steps
    assert rows[0]["step"] == 2 and "valid_sdr" in rows[0]
    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["model"] == "hdemucs"
