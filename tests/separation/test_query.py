"""Query-based zero-shot separation (Chen et al. 2022): detector, conditioning, held-out class."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from separation.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from separation.models.query import (  # noqa: E402
    QuerySystem,
    SoundEventDetector,
    linear_softmax_pool,
    mel_filterbank,
)
from separation.registry import build_model  # noqa: E402
from separation.systems.common import load_mono_tracks  # noqa: E402
from separation.systems.query_train import (  # noqa: E402
    CLASSES,
    LocalisedClip,
    QueryTrainConfig,
    evaluate_query,
    load_queries,
    sample_pairs,
    summarise,
    train_query,
)
from separation.systems.sed import weak_clip_batch  # noqa: E402

TINY = dict(sed=dict(channels=[4, 8], emb_dim=8, n_mels=32),
            unet=dict(channels=[4, 8], n_fft=128, hop_length=32, patch_frames=16))


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One intra-op thread: on the shared CPU, OpenMP threads mostly spin and wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_linear_softmax_pooling_hand_values():
    p = torch.tensor([[0.5, 1.0], [0.2, 0.2]])
    # (0.25 + 1) / 1.5 and (0.04 + 0.04) / 0.4
    torch.testing.assert_close(linear_softmax_pool(p), torch.tensor([1.25 / 1.5, 0.2]))


def test_mel_filterbank_triangles():
    fb = mel_filterbank(16000, 512, 20)
    assert fb.shape == (20, 257)
    assert fb.min() >= 0 and fb.max() <= 1
    # HTK mel: 2595 log10(1 + f / 700); the first filter's centre is the first of 20
    # equally spaced mel points above 0, its peak bin must be the nearest FFT bin.
    mel_max = 2595 * math.log10(1 + 8000 / 700)
    centre_hz = 700 * (10 ** (mel_max / 21 / 2595) - 1)
    assert abs(int(fb[0].argmax()) - centre_hz / (16000 / 512)) <= 1
    assert (fb.sum(axis=1) > 0).all()


def test_detector_shapes_and_probabilities():
    det = SoundEventDetector(channels=[4, 8], emb_dim=8).eval()
    audio = torch.randn(3, 16000)
    logits, emb = det.frame_outputs(audio)
    assert logits.shape[:2] == (3, 4) and emb.shape[:2] == (3, 8)
    assert logits.shape[-1] == math.ceil(16000 / det.hop_length + 1) // 2
    with torch.no_grad():
        clip = det.clip_probabilities(audio)
    assert clip.shape == (3, 4) and float(clip.min()) >= 0 and float(clip.max()) <= 1
    torch.testing.assert_close(torch.sigmoid(det(audio)), clip, atol=1e-5, rtol=1e-4)
    e = det.embed(audio)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))


def test_localise_picks_the_most_probable_window(monkeypatch):
    det = SoundEventDetector(channels=[4], emb_dim=4)
    hop = det.frame_hop
    frames = 100
    prob = torch.full((frames,), 0.05)
    prob[60:70] = 0.95  # the class is active in frames 60-69
    prob[10:14] = 0.9
    logits = torch.logit(prob).expand(1, 4, frames).clone()
    monkeypatch.setattr(det, "frame_outputs", lambda audio: (logits, None))
    starts = det.localise(torch.zeros(frames * hop), class_index=2, clip_samples=10 * hop,
                          count=2)
    assert starts[0] == 60 * hop
    assert len(starts) == 2 and abs(starts[1] - starts[0]) >= 10 * hop  # no overlap
    assert det.localise(torch.zeros(hop), 0, 10 * hop) == [0]  # shorter than a clip


def test_weak_labels_follow_the_kept_stems(multitrack_root):
    tracks = load_mono_tracks(multitrack_root, "train", CLASSES)
    silent = {**tracks[0].stems, "bass": np.zeros_like(tracks[0].stems["bass"])}
    tracks = [type(tracks[0])(tracks[0].name, silent)]
    audio, labels = weak_clip_batch(tracks, CLASSES, np.random.default_rng(0), 32, 8000,
                                    keep_probability=0.5, gain_db=(0.0, 0.0))
    assert audio.shape == (32, 8000) and labels.shape == (32, 4)
    assert labels[:, 1].sum() == 0  # a silent stem is never labelled present
    assert labels.sum(1).max() == 3
    # A clip labelled empty kept only the silent stem: it is silence.
    empty = labels.sum(1) == 0
    assert empty.any() and float(audio[empty].abs().max()) == 0.0


def test_film_conditioning_reaches_every_block():
    system = QuerySystem(**TINY).eval()
    sep = system.separator
    assert len(sep.enc_film) == 2 and len(sep.dec_film) == 1
    mag = torch.rand(2, 1, 64, 16)
    q1, q2 = torch.randn(2, 8), torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(sep(mag, q1), sep(mag, q2))  # identity at init
        for film in [*sep.enc_film, *sep.dec_film]:
            torch.nn.init.normal_(film.proj.weight, std=0.5)
        assert not torch.allclose(sep(mag, q1), sep(mag, q2))
        out = system.separate(torch.randn(2, 4000), q1[0])
    assert out.shape == (2, 2, 4000)
    with pytest.raises(ValueError, match="conditioned"):
        sep(mag)


def test_held_out_class_never_enters_separator_batches():
    system = QuerySystem(**TINY)
    rng = np.random.default_rng(0)

    def clips(label, value):
        return [LocalisedClip(label, "t", 0, np.full(1000, value, np.float32), torch.zeros(8))]

    pool = {c: clips(c, 0.1) for c in CLASSES}
    pool["bass"] = clips("bass", np.nan)  # any use of the held-out class would show up
    seen = [c for c in CLASSES if c != "bass"]
    for _ in range(20):
        mix, tgt, cond = sample_pairs(system, pool, seen, rng, 4)
        assert torch.isfinite(mix).all() and torch.isfinite(tgt).all()
    assert mix.shape == (4, 15 * 32) and cond.shape == (4, 8)


def test_zero_shot_evaluation_end_to_end(multitrack_root, tmp_path):
    result = train_query(QueryTrainConfig(
        data=str(multitrack_root), out=str(tmp_path), holdout="bass", sed_steps=8,
        sep_steps=8, batch_size=4, weak_clip_seconds=1.0, clip_seconds=0.5,
        clips_per_stem=2, n_examples=2, overrides=TINY, progress=False))
    losses = result["separator_losses"]
    assert len(losses) == 8 and all(np.isfinite(losses))
    raw = torch.load(result["checkpoint"], weights_only=True)
    assert raw["model"] == "query" and raw["meta"]["holdout"] == "bass"
    assert raw["meta"]["seen"] == ["drums", "other", "vocals"]
    package = load_checkpoint(result["checkpoint"])
    system = model_from_checkpoint(package)
    queries = load_queries(package["meta"])
    assert set(queries) == set(CLASSES)  # the unseen class has a query from examples
    assert torch.allclose(queries["bass"].norm(), torch.tensor(1.0))

    tracks = load_mono_tracks(multitrack_root, "test", CLASSES)
    rows = evaluate_query(system, queries, tracks, holdout="bass", clip_seconds=0.5)
    table = summarise(rows)
    unseen = [r for r in table if r["class"] == "bass"]
    assert unseen and not any(r["seen"] for r in unseen)
    assert {r["condition"] for r in table} == {"track", "pair"}
    for r in rows:
        assert np.isfinite(r["sdri"])
        assert r["sdri"] == pytest.approx(r["sdr"] - r["sdr_mixture"])

    # Rendering by example clips: a folder of examples defines a new query.
    from separation.data import write_audio
    from separation.systems.render import SystemRenderer

    example = tmp_path / "example.wav"
    write_audio(example, tracks[0].stems["bass"][:, None], 16000)
    renderer = SystemRenderer(result["checkpoint"], sources=["bass"],
                              query_examples={"bass": [example]}, progress=False)
    rows = renderer.render(multitrack_root / "test", tmp_path / "stems")
    assert set(rows[0]["files"]) == {"bass"} and rows[0]["files"]["bass"].exists()


def test_registered_presets_build():
    for preset in ("small", "default"):
        system = build_model("query", preset)
        assert system.detector.emb_dim == system.separator.cond_dim
