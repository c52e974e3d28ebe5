"""Losses: STFT loss against a numpy computation, PQMF bands, discriminator shapes, LSGAN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import freqz, get_window

from separation.losses import (
    PQMF,
    VARIANTS,
    MultiResolutionSTFTLoss,
    SeparationLoss,
    SourceDiscriminators,
    StyleMelGANDiscriminator,
    WaveformL1,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    stft_resolutions,
    variant_weights,
)


def numpy_magnitude(x: np.ndarray, fft: int, hop: int, win: int) -> np.ndarray:
    """Centred STFT by hand: reflect pad, periodic Hann centred in the FFT frame."""
    window = np.zeros(fft)
    left = (fft - win) // 2
    window[left:left + win] = get_window("hann", win, fftbins=True)
    padded = np.pad(x, fft // 2, mode="reflect")
    n_frames = 1 + (len(padded) - fft) // hop
    frames = np.stack([padded[k * hop:k * hop + fft] * window for k in range(n_frames)])
    spec = np.fft.rfft(frames, axis=-1)
    return np.sqrt(np.maximum(spec.real ** 2 + spec.imag ** 2, 1e-7))


def numpy_mrstft(est: np.ndarray, ref: np.ndarray, resolutions) -> float:
    total = 0.0
    for fft, hop, win in resolutions:
        m_est = np.stack([numpy_magnitude(e, fft, hop, win) for e in est])
        m_ref = np.stack([numpy_magnitude(r, fft, hop, win) for r in ref])
        sc = np.sqrt(((m_ref - m_est) ** 2).sum()) / np.sqrt((m_ref ** 2).sum())
        lm = np.abs(np.log(m_ref) - np.log(m_est)).mean()
        total += sc + lm
    return total / len(resolutions)


def test_stft_loss_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(3, 100))
    est = ref + 0.3 * rng.normal(size=(3, 100))
    est[1, :] = 0.0  # a silent estimate exercises the 1e-7 floor
    resolutions = [(16, 4, 10), (32, 8, 16), (8, 2, 8)]
    loss = MultiResolutionSTFTLoss(resolutions=resolutions).double()
    got = loss(torch.from_numpy(est), torch.from_numpy(ref)).item()
    assert got == pytest.approx(numpy_mrstft(est, ref, resolutions), rel=1e-9)


def test_stft_loss_zero_for_identical_and_flattens_sources() -> None:
    x = torch.randn(2, 4, 2, 4000)
    loss = MultiResolutionSTFTLoss(16000)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(x * 0.5, x).item() > 0.1


def test_study_resolutions() -> None:
    assert stft_resolutions(24000) == [(1024, 120, 600), (2048, 240, 1200), (512, 50, 240)]
    assert stft_resolutions(44100) == [(2048, 240, 1200), (4096, 480, 2400), (1024, 100, 480)]
    assert stft_resolutions(16000)[0] == (512, 60, 300)


def test_l1() -> None:
    a, b = torch.tensor([[1.0, -2.0, 3.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    assert WaveformL1()(a, b).item() == pytest.approx((1 + 2 + 2) / 3)


@pytest.mark.parametrize("bands", [2, 4, 8])
def test_pqmf_band_k_passes_its_band(bands: int) -> None:
    pqmf = PQMF(bands)
    filters = pqmf.filters[:, 0].double().numpy()
    for k, h in enumerate(filters):
        w, resp = freqz(h, worN=4096)
        power = np.abs(resp) ** 2
        band = (w >= k * np.pi / bands) & (w < (k + 1) * np.pi / bands)
        assert power[band].sum() / power.sum() > 0.7
    assert pqmf(torch.randn(2, 1, 1024)).shape == (2, bands, 1024 // bands)


def test_pqmf_one_band_is_identity() -> None:
    x = torch.randn(2, 1, 600)
    torch.testing.assert_close(PQMF(1)(x), x)


def test_stylemelgan_output_shapes() -> None:
    disc = StyleMelGANDiscriminator(channels=4, max_channels=32)
    scores = disc(torch.randn(3, 1, 6000))
    # every excerpt is split into w / 512 bands of 512 samples, downsampled by 4*4*4
    assert [tuple(s.shape) for s in scores] == [(3, 1, 8)] * 4
    with pytest.raises(ValueError):
        disc(torch.randn(1, 1, 3000))


def test_source_discriminators_shapes_and_weight_norm() -> None:
    discs = SourceDiscriminators(4, channels=4, max_channels=32, repeats=2)
    out = discs(torch.randn(2, 4, 2, 4096))
    assert len(out) == 4 and all(len(src) == 8 for src in out)
    assert all(s.shape == (4, 1, 8) for src in out for s in src)  # batch * channels
    names = [n for n, _ in discs.named_parameters()]
    assert any("parametrizations.weight.original0" in n for n in names)


def test_lsgan_losses_by_hand() -> None:
    real = [[torch.tensor([1.0, 0.5]), torch.tensor([2.0])]]
    fake = [[torch.tensor([0.0, 1.0]), torch.tensor([-1.0])]]
    # G: mean((f-1)^2) summed: mean(1, 0) + 4 = 4.5
    assert lsgan_generator_loss(fake).item() == pytest.approx(4.5)
    # D: mean((r-1)^2) + mean(f^2) summed: (0.125 + 0.5) + (1 + 1) = 2.625
    assert lsgan_discriminator_loss(real, fake).item() == pytest.approx(2.625)


def test_variants_and_overrides() -> None:
    assert VARIANTS["l1"].lambda_stft == 0 and VARIANTS["l1"].lambda_adv == 0
    assert VARIANTS["l1_stft"].lambda_stft == pytest.approx(0.01)
    assert VARIANTS["l1_stft_adv"].lambda_adv > 0
    w = variant_weights("l1_stft", lambda_stft=0.5, lambda_adv=None)
    assert w.lambda_stft == 0.5 and w.lambda_l1 == 1.0
    with pytest.raises(KeyError):
        variant_weights("nope")


def test_separation_loss_combines_terms() -> None:
    ref = torch.randn(1, 4, 2, 3000)
    est = ref + 0.1 * torch.randn_like(ref)
    w = variant_weights("l1_stft_adv")
    crit = SeparationLoss(w, sample_rate=16000)
    fake = [[torch.zeros(2, 1, 4)] for _ in range(4)]  # G term = 1
    terms = crit(est, ref, fake)
    expected = terms.parts["l1"] + w.lambda_stft * terms.parts["stft"] + w.lambda_adv * 1.0
    assert terms.total.item() == pytest.approx(expected, rel=1e-5)
    assert terms.parts["adv_g"] == pytest.approx(1.0)
