"""The participant page templates and their controllers, in Chromium, under the real CSP.

A stand-in Flask app renders ``templates/participant/*.html`` with the contexts
the views pass (documented at the top of each template) and records what the
page scripts post, so the front end is checked on its own: blinded markup,
must-listen and rating gates, the ratings/events payloads and headers, retries
with one idempotency key, and screenshots at desktop and phone sizes. The full
journey against the real server is in test_journey.py.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from flask import Flask, abort, g, jsonify, render_template, request, send_file
from playwright.sync_api import expect
from werkzeug.serving import make_server

from mosplatform import i18n
from mosplatform.security import CSP

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SR = 44100
CSRF = "csrf-test-token"
PHONE = {"width": 390, "height": 844}
MUSHRA_BANDS = [
    {"min": 80, "max": 100, "label": "Excellent"},
    {"min": 60, "max": 80, "label": "Good"},
    {"min": 40, "max": 60, "label": "Fair"},
    {"min": 20, "max": 40, "label": "Poor"},
    {"min": 0, "max": 20, "label": "Bad"},
]
ACR5 = [{"score": s, "label": f"{s} label"} for s in (5, 4, 3, 2, 1)]
CCR7 = [{"score": s, "label": f"{s:+d} label"} for s in (3, 2, 1, 0, -1, -2, -3)]


class Recorder:
    def __init__(self) -> None:
        self.submits: list[dict] = []
        self.events: list[dict] = []
        self.fail_next: list[int] = []  # statuses to answer before succeeding
        self.next_configs: list[dict] = []  # sent with the next answers, one each
        self.lock = threading.Lock()


def trial_config(kind: str, n: int, *, reference: bool, questions: list[dict], **extra) -> dict:
    cfg = {
        "kind": kind,
        "position": 2,
        "total": 5,
        "trial": 1,
        "is_training": False,
        "source_name": None,
        "stimuli": [{"url": f"/media/tok{i}x", "label": "ABCDEFGHIJKL"[i]} for i in range(n)],
        "reference": {"url": "/media/tokrefx"} if reference else None,
        "questions": questions,
        "must_listen_fraction": 0.25,
        "require_full_scale": False,
        "submit_url": "/api/submit",
        "events_url": "/api/events",
        "csrf_token": CSRF,
        "lang": "en",
    }
    cfg.update(extra)
    cfg["strings"] = i18n.strings(cfg["lang"])
    return cfg


def make_app(media_dir: Path, rec: Recorder, contexts: dict) -> Flask:
    app = Flask(
        __name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static")
    )
    i18n.init_app(app)

    @app.after_request
    def _csp(resp):
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/page/<name>")
    def page(name: str):
        ctx = dict(contexts[name])
        g.lang = ctx.get("lang", "en")
        return render_template(ctx.pop("template"), **ctx)

    @app.get("/media/<token>")
    def media(token: str):
        path = media_dir / f"{token}.wav"
        if not path.exists():
            abort(404)
        return send_file(path, mimetype="audio/wav")

    @app.post("/api/submit")
    @app.post("/api/submit/<int:number>")
    def submit(number: int = 0):
        with rec.lock:
            rec.submits.append({"headers": dict(request.headers), "body": request.get_json(),
                                "path": request.path})
            if rec.fail_next:
                status = rec.fail_next.pop(0)
                return jsonify(error=f"refused with {status}"), status
            if rec.next_configs:
                nxt = rec.next_configs.pop(0)
                return jsonify(ok=True, next_url=f"/page/trial{nxt['position']}",
                               next_config=nxt)
        return jsonify(ok=True, next_url="/page/done")

    @app.post("/api/events")
    def events():
        body = request.get_json()
        with rec.lock:
            rec.events.append({"headers": dict(request.headers), "body": body})
        return jsonify(ok=True, stored=len(body["events"]))

    return app


def write_media(folder: Path) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(int(1.2 * SR)) / SR
    for i, name in enumerate(["tokrefx", *[f"tok{i}x" for i in range(12)]]):
        x = 0.2 * np.sin(2 * np.pi * (220 + 40 * i) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(
            str(folder / f"{name}.wav"),
            np.stack([x, x], axis=1).astype(np.float32),
            SR,
            subtype="PCM_16",
        )


@pytest.fixture()
def site(tmp_path) -> Iterator[tuple[str, Recorder, dict]]:
    """Start the stand-in app; tests add page contexts to the returned dict."""
    media = tmp_path / "media"
    media.mkdir()
    write_media(media)
    rec = Recorder()
    contexts: dict = {
        "done": {
            "template": "participant/done.html",
            "completion_code": "C0DE42",
            "redirect_url": None,
            "progress": {"done": 5, "total": 5},
            "test_name": "Demo",
        },
    }
    server = make_server("127.0.0.1", 0, make_app(media, rec, contexts), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", rec, contexts
    finally:
        server.shutdown()
        thread.join(timeout=5)


def phone_shot(page, url, name, screenshot):
    page.set_viewport_size(PHONE)
    page.goto(url)
    page.wait_for_timeout(300)
    screenshot(page, name)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_mushra_page(page, site, screenshot):
    base, rec, contexts = site
    cfg = trial_config(
        "mushra",
        4,
        reference=True,
        require_full_scale=True,
        questions=[
            {
                "key": "quality",
                "label": "Quality",
                "scale": {
                    "type": "continuous",
                    "min": 0,
                    "max": 100,
                    "step": 1,
                    "bands": MUSHRA_BANDS,
                },
            }
        ],
    )
    contexts["mushra"] = {
        "template": "participant/trial_mushra.html",
        "trial_config": cfg,
        "test_name": "Demo",
    }
    page.goto(f"{base}/page/mushra")
    page.wait_for_selector("#mushra:not([hidden])")
    cols = page.locator(".mushra-col")
    assert cols.count() == 4
    assert page.locator(".band").count() == 5
    assert page.locator("#next").is_disabled()
    # Only the selected stimulus's slider is active.
    page.click(".mushra-col:nth-child(2) .btn-stimulus")
    assert page.locator(".mushra-col:nth-child(2) input").is_enabled()
    for k in (1, 3, 4):
        assert page.locator(f".mushra-col:nth-child({k}) input").is_disabled()
    assert "current" in (cols.nth(1).get_attribute("class") or "")

    page.click("#reference")
    page.wait_for_timeout(350)
    scores = [40, 70, 100, 15]
    for k, score in enumerate(scores, start=1):
        page.click(f".mushra-col:nth-child({k}) .btn-stimulus")
        page.wait_for_timeout(400)  # 0.25 x 1.2 s
        page.locator(f".mushra-col:nth-child({k}) input").fill(str(score))
        if k == 3:
            page.locator(f".mushra-col:nth-child({k}) input").fill("99")
    # require_full_scale: one at 100 is needed; 99 for now.
    expect(page.locator(".mushra-col.heard")).to_have_count(4, timeout=10000)
    assert page.locator("#next").is_disabled()
    assert "100" in page.locator("#hint").inner_text()
    page.click(".mushra-col:nth-child(3) .btn-stimulus")
    page.locator(".mushra-col:nth-child(3) input").fill("100")
    page.wait_for_selector("#next:enabled")
    screenshot(page, "page-mushra-desktop")
    html = page.content()
    page.click("#next")
    page.wait_for_url(f"{base}/page/done")
    assert not page.console_errors, page.console_errors

    assert len(rec.submits) == 1
    sub = rec.submits[0]
    assert sub["headers"]["Content-Type"] == "application/json"
    assert sub["headers"]["X-Csrftoken"] == CSRF
    uuid.UUID(sub["headers"]["Idempotency-Key"])
    body = sub["body"]
    assert body["ratings"] == [
        {"stimulus": i, "question": "quality", "score": s} for i, s in enumerate([40, 70, 100, 15])
    ]
    assert [x["stimulus"] for x in body["listening"]] == [0, 1, 2, 3]
    assert all(x["heard_fraction"] >= 0.25 and x["plays"] >= 1 for x in body["listening"])
    assert isinstance(body["client_time_ms"], int)
    # Events arrived (batches sent while the page was open, the rest with the answer),
    # with the reference logged as null and the CSRF token in each batch's body.
    evs = [e for batch in rec.events for e in batch["body"]["events"]] + body["events"]
    assert all(batch["body"]["csrf_token"] == CSRF for batch in rec.events)
    assert body["events"], "the answer carries the events not yet sent"
    kinds = {e["kind"] for e in evs}
    assert {"page_load", "play", "switch", "heard"} <= kinds
    assert all(e["trial"] == 1 for e in evs)
    assert any(
        e["kind"] == "switch" and e["stimulus"] is None and e["data"].get("reference") for e in evs
    )
    heard = [e for e in evs if e["kind"] == "heard"]
    assert {e["stimulus"] for e in heard if not e["data"].get("reference")} == {0, 1, 2, 3}
    assert all(e["stimulus"] is None for e in heard if e["data"].get("reference"))
    # Nothing in the page but positions, labels and the opaque URLs.
    assert not re.search(r"data-(condition|role|key)", html)

    phone_shot(page, f"{base}/page/mushra", "page-mushra-phone", screenshot)


def test_mushra_phone_layout_is_rows(page, site):
    base, _, contexts = site
    cfg = trial_config(
        "mushra",
        12,
        reference=True,
        questions=[
            {
                "key": "q",
                "label": "Q",
                "scale": {"type": "continuous", "min": 0, "max": 100, "step": 1, "bands": []},
            }
        ],
    )
    contexts["m12"] = {"template": "participant/trial_mushra.html", "trial_config": cfg}
    page.set_viewport_size(PHONE)
    page.goto(f"{base}/page/m12")
    page.wait_for_selector("#mushra:not([hidden])")
    boxes = [page.locator(".mushra-col").nth(i).bounding_box() for i in range(12)]
    ys = [b["y"] for b in boxes]
    assert ys == sorted(ys) and len(set(round(y) for y in ys)) == 12, "columns should stack as rows"
    slider = page.locator(".mushra-col").first.locator("input").bounding_box()
    assert slider["width"] > 3 * slider["height"], "sliders should be horizontal on a phone"
    assert max(b["x"] + b["width"] for b in boxes) <= PHONE["width"] + 1
    assert page.locator(".band").count() == 5  # default BS.1534 bands when the scale gives none
    page.set_viewport_size({"width": 1280, "height": 900})
    slider = page.locator(".mushra-col").first.locator("input").bounding_box()
    assert slider["height"] > 3 * slider["width"], "sliders should be vertical on a desktop"
    assert not page.console_errors, page.console_errors


def test_acr_page_with_two_questions(page, site, screenshot):
    base, rec, contexts = site
    questions = [
        {
            "key": "accuracy",
            "label": "Separation accuracy",
            "scale": {"type": "categorical", "categories": ACR5},
        },
        {
            "key": "contamination",
            "label": "Contamination",
            "scale": {"type": "categorical", "categories": ACR5},
        },
    ]
    cfg = trial_config(
        "acr", 1, reference=False, questions=questions, source_name="vocals", lang="ja"
    )
    contexts["acr"] = {
        "template": "participant/trial_acr.html",
        "trial_config": cfg,
        "lang": "ja",
        "progress": {"done": 4, "total": 9},
    }
    page.goto(f"{base}/page/acr")
    page.wait_for_selector("#questions:not([hidden])")
    assert "対象の音源: vocals" in page.inner_text(".target-source")
    assert page.locator("#stimulus-buttons").is_hidden()  # one stimulus: just play/pause
    assert page.locator("progress").get_attribute("value") == "4"
    page.check("input[name='q-0-0'][value='4']")
    page.check("input[name='q-0-1'][value='2']")
    assert page.locator("#next").is_disabled()  # not heard yet
    page.click("#play")
    page.wait_for_selector("#next:enabled", timeout=10000)
    screenshot(page, "page-acr-desktop-ja")
    page.click("#next")
    page.wait_for_url(f"{base}/page/done")
    body = rec.submits[0]["body"]
    assert body["ratings"] == [
        {"stimulus": 0, "question": "accuracy", "score": 4},
        {"stimulus": 0, "question": "contamination", "score": 2},
    ]
    assert not page.console_errors, page.console_errors
    phone_shot(page, f"{base}/page/acr", "page-acr-phone-ja", screenshot)


def test_next_trial_is_shown_in_place(page, site):
    """An answer that brings the next trial's config: no page load, a fresh trial."""
    base, rec, contexts = site
    questions = [{"key": "q", "label": "Quality",
                  "scale": {"type": "categorical", "categories": ACR5}}]
    first = trial_config("acr", 1, reference=False, questions=questions, is_training=True,
                         position=1, trial=0, progress={"done": 3, "total": 8})
    second = {k: v for k, v in trial_config(
        "acr", 1, reference=False, questions=questions, position=2, trial=1,
        source_name="bass", submit_url="/api/submit/2", progress={"done": 4, "total": 8},
        stimuli=[{"url": "/media/tok5x", "label": "A"}]).items() if k != "strings"}
    rec.next_configs.append(second)
    contexts["acr1"] = {"template": "participant/trial_acr.html", "trial_config": first,
                        "progress": first["progress"], "test_name": "Demo"}
    documents: list[str] = []
    media: list[str] = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document"
            else media.append(r.url) if "/media/" in r.url else None)
    page.goto(f"{base}/page/acr1")
    expect(page.locator(".banner-training")).to_be_visible()
    page.check("input[name='q-0-0'][value='4']")
    page.click("#play")
    page.wait_for_selector("#next:enabled", timeout=10000)
    page.click("#next")

    page.wait_for_url(f"{base}/page/trial2")
    expect(page.locator("h1")).to_have_text("Trial 2 of 5")
    expect(page.locator(".banner-training")).to_have_count(0)
    expect(page.locator(".target-source")).to_have_text("Target source: bass")
    expect(page.locator(".progress-text")).to_have_text("4 of 8")
    assert page.title() == "Trial 2 of 5 – Demo"
    page.wait_for_selector("#questions:not([hidden])")
    assert page.locator("input[name='q-0-0']:checked").count() == 0  # fresh controls
    assert page.locator("#next").is_disabled()
    # One set of shortcuts: space starts playback (twice would start and stop it).
    page.keyboard.press(" ")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "true")
    page.check("input[name='q-0-0'][value='2']")
    page.wait_for_selector("#next:enabled", timeout=10000)
    page.click("#next")
    page.wait_for_url(f"{base}/page/done")
    assert not page.console_errors, page.console_errors

    assert documents == [f"{base}/page/acr1", f"{base}/page/done"]
    assert media == [f"{base}/media/tok0x", f"{base}/media/tok5x"]
    one, two = rec.submits
    assert one["path"] == "/api/submit" and two["path"] == "/api/submit/2"
    assert two["body"]["ratings"] == [{"stimulus": 0, "question": "q", "score": 2}]
    assert one["headers"]["Idempotency-Key"] != two["headers"]["Idempotency-Key"]
    loads = [e for e in two["body"]["events"] if e["kind"] == "page_load"]
    assert [(e["trial"], e["data"]["in_place"]) for e in loads] == [(1, True)]
    assert all(e["trial"] == 1 for e in two["body"]["events"])


def test_ccr_page_plays_in_order_and_rates_the_pair(page, site, screenshot):
    base, rec, contexts = site
    cfg = trial_config(
        "ccr",
        2,
        reference=False,
        questions=[
            {
                "key": "cmos",
                "label": "Second vs first",
                "scale": {"type": "categorical", "categories": CCR7},
            }
        ],
    )
    contexts["ccr"] = {"template": "participant/trial_ccr.html", "trial_config": cfg}
    page.goto(f"{base}/page/ccr")
    page.wait_for_selector("#stimulus-buttons:not([hidden])")
    assert page.locator(".scale-option").count() == 7
    page.click(".btn-sequence")
    # The sequence plays the first stimulus, then the second, each once (1.2 s).
    expect(page.locator(".btn-stimulus.heard")).to_have_count(2, timeout=10000)
    page.check("input[name='q-p-0'][value='-2']")
    page.wait_for_selector("#next:enabled")
    screenshot(page, "page-ccr-desktop")
    page.click("#next")
    page.wait_for_url(f"{base}/page/done")
    assert rec.submits[0]["body"]["ratings"] == [
        {"stimulus": None, "question": "cmos", "score": -2}
    ]
    assert not page.console_errors, page.console_errors


@pytest.mark.parametrize("kind", ["dcr", "ab"])
def test_dcr_and_ab_pages_render(page, site, screenshot, kind):
    base, _, contexts = site
    cats = (
        ACR5
        if kind == "dcr"
        else [
            {"score": 1, "label": "A"},
            {"score": 0, "label": "No preference"},
            {"score": -1, "label": "B"},
        ]
    )
    n = 1 if kind == "dcr" else 2
    cfg = trial_config(
        kind,
        n,
        reference=True,
        is_training=(kind == "ab"),
        questions=[
            {"key": "q", "label": "Question", "scale": {"type": "categorical", "categories": cats}}
        ],
    )
    contexts[kind] = {"template": f"participant/trial_{kind}.html", "trial_config": cfg}
    page.goto(f"{base}/page/{kind}")
    page.wait_for_selector("#questions:not([hidden])")
    labels = page.locator(".btn-stimulus .btn-label").all_inner_texts()
    assert labels == (["Reference", "Processed"] if kind == "dcr" else ["Reference", "A", "B"])
    if kind == "ab":
        assert page.locator(".banner-training").is_visible()
    screenshot(page, f"page-{kind}-desktop")
    assert not page.console_errors, page.console_errors


def test_submit_retries_with_one_idempotency_key(page, site):
    base, rec, contexts = site
    cfg = trial_config(
        "acr",
        1,
        reference=False,
        must_listen_fraction=0.0,
        questions=[
            {"key": "mos", "label": "Quality", "scale": {"type": "categorical", "categories": ACR5}}
        ],
    )
    contexts["acr"] = {"template": "participant/trial_acr.html", "trial_config": cfg}
    page.goto(f"{base}/page/acr")
    page.wait_for_selector("#questions:not([hidden])")
    key_before = page.evaluate("() => sessionStorage.getItem('mos-idem:/api/submit')")
    page.reload()
    page.wait_for_selector("#questions:not([hidden])")
    assert page.evaluate("() => sessionStorage.getItem('mos-idem:/api/submit')") == key_before

    rec.fail_next = [422]
    page.check("input[name='q-0-0'][value='3']")
    page.click("#next")
    page.wait_for_selector("#submit-status:not([hidden])")
    assert "refused with 422" in page.inner_text(
        "#submit-status"
    )  # a 4xx shows the server's message
    rec.fail_next = [503, 502]
    page.click("#next")
    page.wait_for_url(f"{base}/page/done", timeout=15000)
    keys = {s["headers"]["Idempotency-Key"] for s in rec.submits}
    assert keys == {key_before}
    assert len(rec.submits) == 4


def test_other_pages(page, site, screenshot):
    base, _, contexts = site
    common = {
        "test_name": "Demo test",
        "csrf_token": CSRF,
        "form_action": "/page/welcome",
        "progress": {"done": 1, "total": 8},
    }
    contexts.update(
        {
            "welcome": {
                "template": "participant/welcome.html",
                **common,
                "description": "A study of separated music.",
            },
            "instructions": {
                "template": "participant/instructions.html",
                **common,
                "instructions": "Rate each sound.\nUse headphones.",
                "kind": "mushra",
            },
            "calibration": {
                "template": "participant/calibration.html",
                **common,
                "calibration_url": "/media/tokrefx",
                "headphone_check": {
                    "kind": "antiphase",
                    "trials": [
                        {"urls": ["/media/tok0x", "/media/tok1x", "/media/tok2x"]} for _ in range(3)
                    ],
                },
            },
            "questionnaire": {
                "template": "participant/questionnaire.html",
                **common,
                "message": "Please answer",
                "questionnaire_fields": [
                    {
                        "key": "age",
                        "label": "Age",
                        "type": "number",
                        "choices": [],
                        "required": True,
                    },
                    {
                        "key": "hp",
                        "label": "Headphones",
                        "type": "choice",
                        "choices": ["closed", "open"],
                        "required": False,
                    },
                    {
                        "key": "country",
                        "label": "Country",
                        "type": "choice",
                        "choices": [f"c{i}" for i in range(9)],
                        "required": False,
                    },
                    {
                        "key": "note",
                        "label": "Comments",
                        "type": "textarea",
                        "choices": [],
                        "required": False,
                    },
                ],
            },
            "error": {"template": "participant/error.html", "message": "This link is not valid."},
            "done_ja": {
                "template": "participant/done.html",
                "lang": "ja",
                "completion_code": "XYZ",
                "redirect_url": "https://example.org/complete?cc=XYZ",
                "progress": {"done": 8, "total": 8},
            },
        }
    )
    for name in [
        "welcome",
        "instructions",
        "calibration",
        "questionnaire",
        "done",
        "done_ja",
        "error",
    ]:
        page.goto(f"{base}/page/{name}")
        page.wait_for_load_state("load")
        screenshot(page, f"page-{name}-desktop")
        phone_shot(page, f"{base}/page/{name}", f"page-{name}-phone", screenshot)
        assert not page.console_errors, (name, page.console_errors)
    page.goto(f"{base}/page/welcome")
    assert page.locator("input[name='consent'][required]").count() == 1
    assert page.locator("input[name='csrf_token']").get_attribute("value") == CSRF
    page.goto(f"{base}/page/questionnaire")
    assert page.locator("input[name='hp'][type='radio']").count() == 2
    assert page.locator("select[name='country'] option").count() == 10
    page.goto(f"{base}/page/done_ja")
    assert page.inner_text("#completion-code") == "XYZ"
    assert page.locator("html").get_attribute("lang") == "ja"
    # Headphone check: a trial's answers unlock after its three sounds played once.
    page.goto(f"{base}/page/calibration")
    radios = page.locator("input[name='check_0']")
    assert radios.count() == 3 and radios.first.is_disabled()
    for o in range(3):
        page.click(f".hp-play[data-trial='0'][data-option='{o}']")
        page.wait_for_selector(f".hp-play[data-trial='0'][data-option='{o}'].played", timeout=10000)
    assert radios.first.is_enabled()
    assert page.locator("input[name='check_1']").first.is_disabled()
    assert not page.console_errors, page.console_errors


def test_keyboard_and_waveform(page, site):
    base, rec, contexts = site
    cfg = trial_config(
        "mushra",
        3,
        reference=True,
        questions=[
            {
                "key": "q",
                "label": "Q",
                "scale": {
                    "type": "continuous",
                    "min": 0,
                    "max": 100,
                    "step": 1,
                    "bands": MUSHRA_BANDS,
                },
            }
        ],
    )
    contexts["kb"] = {"template": "participant/trial_mushra.html", "trial_config": cfg}
    page.goto(f"{base}/page/kb")
    page.wait_for_selector("#mushra:not([hidden])")
    cols = page.locator(".mushra-col")
    page.keyboard.press("2")  # select (and play) the second stimulus
    expect(cols.nth(1)).to_have_class(re.compile(r"\bcurrent\b"))
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("r")
    expect(page.locator("#reference")).to_have_class(re.compile(r"\bcurrent\b"))
    assert all(cols.nth(k).locator("input").is_disabled() for k in range(3))
    page.keyboard.press("3")
    expect(cols.nth(2)).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press(" ")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "false")
    # Arrows move the paused playhead by 0.1 s (Shift) or 1 s (capped at the end).
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    expect(page.locator("#time")).to_contain_text(re.compile(r"^0\.[2-9] /"))
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#time")).to_contain_text(re.compile(r"^0\.0 /"))
    # L toggles a loop; a drag on the waveform sets one; a click seeks.
    page.keyboard.press("l")
    expect(page.locator("#loop")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("l")
    expect(page.locator("#loop")).to_have_attribute("aria-pressed", "false")
    box = page.locator("#waveform").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.1 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.5 * box["width"], y, steps=5)
    page.mouse.up()
    expect(page.locator("#loop")).to_have_attribute("aria-pressed", "true")
    page.mouse.click(box["x"] + 0.75 * box["width"], y)
    expect(page.locator("#time")).to_contain_text(re.compile(r"^0\.9 /"))  # 0.75 x 1.2 s
    kinds = set()
    page.evaluate("() => window.dispatchEvent(new Event('pagehide'))")
    page.wait_for_timeout(300)
    for batch in rec.events:
        kinds |= {e["kind"] for e in batch["body"]["events"]}
    assert {"play", "pause", "switch", "seek", "loop"} <= kinds
    assert not page.console_errors, page.console_errors
