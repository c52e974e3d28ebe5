"""U-Net spectrogram mask (Jansson et al. 2017): model, loss, training, checkpoint, rendering."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from separation.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from separation.models.unet import UNetMask, istft, masked_magnitude_l1, stft  # noqa: E402
from separation.registry import build_model  # noqa: E402
from separation.systems.common import fit, load_mono_tracks  # noqa: E402
from separation.systems.unet_train import (  # noqa: E402
    UNetTrainConfig,
    evaluate_unet,
    patch_magnitudes,
    sample_patches,
    train_unet,
)

TINY = dict(channels=[4, 8], n_fft=128, hop_length=32, patch_frames=16, dropout=0.5)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One intra-op thread: on the shared CPU, OpenMP threads mostly spin and wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_data(multitrack_root):
    """The separation tests' synthetic multitracks (MUSDB layout, 8 kHz stereo)."""
    return multitrack_root


def test_default_preset_is_the_paper_configuration():
    model = build_model("unet", "default")
    assert [b[0].out_channels for b in model.encoder] == [16, 32, 64, 128, 256, 512]
    assert (model.n_fft, model.hop_length, model.patch_frames, model.sample_rate) == (
        1024, 768, 128, 16000)
    dropouts = [any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in block)
                for block in model.decoder]
    assert dropouts == [True, True, True, False, False, False]
    assert isinstance(model.encoder[0][2], torch.nn.LeakyReLU)
    assert model.encoder[0][2].negative_slope == 0.2
    model.eval()
    with torch.no_grad():
        mask = model(torch.rand(1, 1, 512, 128))
    assert mask.shape == (1, 1, 512, 128)


@pytest.mark.parametrize("preset", ["small", "default"])
def test_separate_shapes_and_mask_range(preset):
    model = build_model("unet", preset).eval()
    audio = torch.randn(2, 20000)
    with torch.no_grad():
        spec = model.spectrogram(audio)
        mask = model.predict_mask(spec.abs() * 1e3)  # scale must not matter
        out = model.separate(audio)
    assert mask.shape == spec.shape
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    assert out.shape == (2, 2, 20000)
    # mask * X + (1 - mask) * X = X, and the STFT pair is a perfect reconstruction.
    torch.testing.assert_close(out.sum(1), audio, atol=1e-4, rtol=0)


def test_stft_matches_a_hand_computed_frame():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4096)
    n_fft, hop, k = 256, 64, 20
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    start = k * hop - n_fft // 2  # centred frames
    expected = np.fft.rfft(x[start: start + n_fft] * window)
    got = stft(torch.from_numpy(x), n_fft, hop)[:, k].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)
    back = istft(stft(torch.from_numpy(x), n_fft, hop), n_fft, hop, len(x)).numpy()
    np.testing.assert_allclose(back, x, atol=1e-9)


def test_l1_loss_against_hand_computation():
    mask = torch.tensor([[0.5, 1.0], [0.0, 0.25]])
    mix = torch.tensor([[2.0, 4.0], [1.0, 8.0]])
    target = torch.tensor([[1.0, 3.0], [1.0, 1.0]])
    # |1 - 1| + |4 - 3| + |0 - 1| + |2 - 1| = 3, mean over 4 bins
    assert float(masked_magnitude_l1(mask, mix, target)) == pytest.approx(0.75)


def test_normalisation_uses_one_scale():
    mix = torch.tensor([[[1.0, 4.0]], [[0.5, 0.25]]])
    target = torch.tensor([[[2.0, 1.0]], [[0.5, 0.0]]])
    mix_n, target_n = UNetMask.normalise(mix, target)
    torch.testing.assert_close(mix_n, torch.tensor([[[0.25, 1.0]], [[1.0, 0.5]]]))
    torch.testing.assert_close(target_n, torch.tensor([[[0.5, 0.25]], [[1.0, 0.0]]]))


def test_patch_size_validation():
    with pytest.raises(ValueError, match="divisible"):
        UNetMask(channels=[4, 8, 16], n_fft=128, patch_frames=12)


def test_training_steps_lower_the_loss_on_a_fixed_batch(tiny_data):
    torch.manual_seed(0)
    model = UNetMask(**TINY)
    tracks = load_mono_tracks(tiny_data, "train", ["drums", "bass", "other", "vocals"])
    mix, tgt = sample_patches(model, tracks, "vocals", np.random.default_rng(0), 8)
    mix_mag, tgt_mag = patch_magnitudes(model, mix, tgt)
    assert mix_mag.shape == (8, 1, 64, 16)
    assert float(mix_mag.amax(dim=(1, 2, 3)).min()) == pytest.approx(1.0)

    def loss_fn(rng):
        return masked_magnitude_l1(model(mix_mag), mix_mag, tgt_mag)

    losses = fit(model, loss_fn, steps=40, lr=3e-3, progress=False)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_train_checkpoint_round_trip_and_render(tiny_data, tmp_path):
    result = train_unet(UNetTrainConfig(data=str(tiny_data), out=str(tmp_path / "run"),
                                        steps=6, batch_size=4, overrides=TINY, progress=False))
    path = result["checkpoint"]
    raw = torch.load(path, weights_only=True)
    assert raw["model"] == "unet" and raw["kwargs"]["channels"] == [4, 8]
    assert raw["meta"]["sources"] == ["vocals", "accompaniment"]
    assert (tmp_path / "run" / "train_log.csv").read_text().count("\n") == 7
    model = model_from_checkpoint(load_checkpoint(path))
    torch.manual_seed(1)
    fresh = build_model("unet", "small", **TINY).eval()
    fresh.load_state_dict(raw["state"])
    audio = torch.randn(1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(model.separate(audio), fresh.separate(audio))

    rows = evaluate_unet(model, load_mono_tracks(tiny_data, "test",
                                                 ["drums", "bass", "other", "vocals"]), "vocals")
    assert {r["source"] for r in rows} == {"vocals", "accompaniment"}
    assert all(np.isfinite(r["sdr"]) for r in rows)

    from separation.data import read_audio
    from separation.systems.render import render_system

    render_system(path, tiny_data, tmp_path / "stems", progress=False)
    track = next((tiny_data / "test").iterdir()).name
    voc, sr = read_audio(tmp_path / "stems" / track / "vocals.wav")
    mix, sr_mix = read_audio(tiny_data / "test" / track / "mixture.wav")
    assert sr == sr_mix and voc.shape == mix.shape
    assert (tmp_path / "stems" / track / "accompaniment.wav").exists()


def test_cli_trains_and_renders(tiny_data, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from separation.registry import model_entry
    from separation.systems.cli import render_system_command, train_system_command

    # The CLI trains a registered preset; make "small" tiny for the test.
    monkeypatch.setitem(model_entry("unet").presets, "small",
                        {**TINY, "sample_rate": 16000})
    runner = CliRunner()
    res = runner.invoke(train_system_command, ["unet", "--data", str(tiny_data), "--out",
                                               str(tmp_path / "cli"), "--steps", "3"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(render_system_command, ["--checkpoint", str(tmp_path / "cli" / "unet.pt"),
                                                "--input", str(tiny_data / "test"),
                                                "--out", str(tmp_path / "cli_stems")])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "cli_stems").glob("*/vocals.wav"))) == 1


@pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None, reason="needs espeak-ng")
def test_speech_over_music_data(tiny_data, tmp_path):
    from separation.data import read_audio
    from separation.systems.speech import generate_speech_dataset, make_sentences

    sentences = make_sentences(np.random.default_rng(3), 5)
    assert all(s[0].isupper() and s.endswith(".") and len(s.split()) >= 6 for s in sentences)
    assert sentences == make_sentences(np.random.default_rng(3), 5)
    root = generate_speech_dataset(tiny_data, tmp_path / "speech", splits=("test",))
    track = next((root / "test").iterdir())
    mix, sr = read_audio(track / "mixture.wav")
    speech, _ = read_audio(track / "speech.wav")
    music, _ = read_audio(track / "music.wav")
    assert sr == 16000 and mix.shape[1] == 1
    np.testing.assert_allclose(mix, speech + music, atol=1e-6)
    assert np.sqrt(np.mean(speech ** 2)) > 1e-3  # speech was actually synthesised
