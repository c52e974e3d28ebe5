"""TAGBOX-style steering (Manilow et al. 2022): masks, plug-in interfaces, the steering loop."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from separation.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from separation.models.query import SoundEventDetector  # noqa: E402
from separation.models.tagbox import (  # noqa: E402
    AudioAutoencoder,
    AudioTagger,
    SpectralAutoencoder,
    TagboxSystem,
    multires_masked_estimate,
    steer,
)
from separation.models.unet import istft, stft  # noqa: E402
from separation.registry import build_model  # noqa: E402
from separation.systems.common import load_mono_tracks  # noqa: E402
from separation.systems.tagbox_steer import TagboxTrainConfig, steer_long, train_tagbox  # noqa: E402

TINY = dict(autoencoder=dict(n_fft=256, hop_length=64, hidden=32, latent_dim=8),
            tagger=dict(channels=[4, 8], emb_dim=8, n_mels=32))
FFTS = (128, 256, 512)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One intra-op thread: on the shared CPU, OpenMP threads mostly spin and wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_mask_formula_and_range():
    torch.manual_seed(0)
    x = torch.randn(1, 4000)
    j = torch.randn(1, 4000)
    est, masks = multires_masked_estimate(j, x, FFTS)
    assert est.shape == x.shape and len(masks) == 3
    for n_fft, mask in zip(FFTS, masks, strict=True):
        assert float(mask.min()) >= 0 and float(mask.max()) <= 1
        jm = stft(j, n_fft, n_fft // 4).abs()
        xm = stft(x, n_fft, n_fft // 4).abs()
        torch.testing.assert_close(mask, jm / (torch.maximum(jm, xm) + 1e-7))
    # The estimate is the average of the three masked, inverted mixtures.
    manual = torch.stack([istft(m * stft(x, n, n // 4), n, n // 4, 4000)
                          for n, m in zip(FFTS, masks, strict=True)]).mean(0)
    torch.testing.assert_close(est, manual)


def test_mask_of_scaled_mixture_is_the_scale():
    # j = 0.5 x  =>  |J| = 0.5 |X|  =>  M = 0.5 (up to eps), estimate = 0.5 x.
    x = torch.randn(2, 6000)
    est, masks = multires_masked_estimate(0.5 * x, x, FFTS)
    for mask in masks:
        torch.testing.assert_close(mask, torch.full_like(mask, 0.5), atol=1e-4, rtol=0)
    torch.testing.assert_close(est, 0.5 * x, atol=1e-4, rtol=0)
    est, _ = multires_masked_estimate(torch.zeros_like(x), x, FFTS)
    assert float(est.abs().max()) == 0.0


def test_shipped_models_fit_the_plugin_protocols():
    ae = SpectralAutoencoder(n_fft=256, hop_length=64, hidden=32, latent_dim=8)
    tagger = SoundEventDetector(channels=[4], emb_dim=4)
    assert isinstance(ae, AudioAutoencoder)
    assert isinstance(tagger, AudioTagger)
    audio = torch.randn(2, 5000)
    latent = ae.encode(audio)
    assert latent.shape[:2] == (2, 8)
    assert ae(audio).shape == audio.shape
    assert ae.decode(latent).shape[-1] >= 5000 - 64


class _ToyAutoencoder:
    """A user-supplied plug-in: the latent is a per-band gain of a fixed filterbank."""

    sample_rate = 16000

    def __init__(self, mixture: torch.Tensor) -> None:
        self.bands = []
        spec = stft(mixture, 256, 64)
        edges = [0, 8, 32, 129]
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            keep = torch.zeros_like(spec)
            keep[..., lo:hi, :] = spec[..., lo:hi, :]
            self.bands.append(istft(keep, 256, 64, mixture.shape[-1]))

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.zeros(audio.shape[0], len(self.bands))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        gains = torch.sigmoid(latent)
        return sum(gains[:, i: i + 1] * b for i, b in enumerate(self.bands))


class _LowBandTagger:
    """A plug-in tagger whose "bass" logit is the low-band energy share (differentiable)."""

    sample_rate = 16000
    classes = ["bass", "hats"]

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        power = stft(audio, 256, 64).abs() ** 2
        share = power[:, :8].sum((1, 2)) / (power.sum((1, 2)) + 1e-9)
        return torch.stack([10 * (share - 0.5), 10 * (0.5 - share)], dim=1)


def test_steering_with_plugins_moves_towards_the_target_tags():
    t = torch.arange(8000) / 16000
    low = torch.sin(2 * torch.pi * 150 * t)
    high = 0.8 * torch.sin(2 * torch.pi * 5000 * t)
    mixture = (low + high)[None]
    result = steer(mixture, ["bass"], _ToyAutoencoder(mixture), _LowBandTagger(), steps=40,
                   lr=0.3, fft_sizes=(256, 512))
    assert result.losses[-1] < 0.5 * result.losses[0]
    # The steered estimate keeps the low tone and drops the high one.
    corr_low = float(torch.nn.functional.cosine_similarity(result.estimate, low[None]))
    assert corr_low > 0.9
    torch.testing.assert_close(result.estimate + result.remainder, mixture)


def test_steering_lowers_the_tagger_loss_on_a_mixture(multitrack_root):
    torch.manual_seed(0)
    system = TagboxSystem(**TINY).eval()
    tracks = load_mono_tracks(multitrack_root, "test", system.tags)
    mixture = torch.from_numpy(tracks[0].stems["mixture"][:16000])
    params_before = [p.clone() for p in system.parameters()]
    result = steer(mixture, ["vocals"], system.autoencoder, system.tagger, steps=15, lr=0.5,
                   fft_sizes=FFTS)
    assert len(result.losses) == 16
    assert result.losses[-1] < result.losses[0]
    assert result.estimate.shape == mixture.shape
    torch.testing.assert_close(result.estimate + result.remainder, mixture)
    for before, after in zip(params_before, system.parameters(), strict=True):
        assert torch.equal(before, after)  # no separation training: models untouched
    assert all(p.requires_grad for p in system.parameters())  # state restored
    with pytest.raises(ValueError, match="unknown tags"):
        steer(mixture, ["kazoo"], system.autoencoder, system.tagger, steps=1)


def test_training_lowers_losses_and_checkpoint_round_trip(multitrack_root, tmp_path):
    result = train_tagbox(TagboxTrainConfig(
        data=str(multitrack_root), out=str(tmp_path), ae_steps=30, tagger_steps=4,
        batch_size=4, ae_seconds=0.25, tagger_seconds=0.5, lr=3e-3, steer_steps=3,
        overrides={**TINY, "fft_sizes": list(FFTS)}, progress=False))
    ae = result["ae_losses"]
    assert np.mean(ae[-5:]) < np.mean(ae[:5])
    raw = torch.load(result["checkpoint"], weights_only=True)
    assert raw["model"] == "tagbox" and raw["kwargs"]["fft_sizes"] == list(FFTS)
    system = model_from_checkpoint(load_checkpoint(result["checkpoint"]))
    assert system.steps == 3
    tracks = load_mono_tracks(multitrack_root, "test", system.tags)
    mix = tracks[0].stems["mixture"]
    est, rest, finals = steer_long(system, mix, ["drums"], segment_seconds=1.0)
    assert est.shape == mix.shape and len(finals) == 2
    np.testing.assert_allclose(est + rest, mix, atol=1e-6)


def test_registered_presets_build():
    for preset in ("small", "default"):
        system = build_model("tagbox", preset)
        assert system.tags == ["drums", "bass", "other", "vocals"]
