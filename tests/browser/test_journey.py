"""Full participant journeys in Chromium against the real application.

A MUSHRA test and an ACR (separation MOS) test are created from small generated
stems, the app is served by a threaded WSGI server on SQLite with CSRF on, and
a participant goes link -> consent -> instructions -> (training) -> trials ->
done, reloading in the middle, losing one response on the network and closing
the tab. The database must then hold every rating exactly once, with the scores
that were entered. Everything the browser received (HTML, scripts, JSON, URLs,
headers) is scanned for condition names, roles and other stable identifiers.
Screenshots of every page kind at desktop and phone sizes go to
test-output/screenshots/.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from werkzeug.serving import make_server

from tests.audiofixtures import make_musdb

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# Condition keys chosen to be unmistakable in a text scan.
MUSHRA_YAML = """
name: Journey MUSHRA
kind: mushra
languages: [en, ja]
questions:
  - key: quality
    label: {{en: Basic audio quality, ja: 音質}}
    scale: mushra
conditions:
  - {{key: zqopenref, role: reference}}
  - {{key: zqhiddenref, role: hidden_reference}}
  - {{key: zqlowanchor, role: low_anchor}}
  - {{key: zqmidanchor, role: mid_anchor}}
  - {{key: zqsystemalpha, folder: {sysA}}}
  - {{key: zqsystembeta, folder: {sysB}}}
stimuli:
  type: folders
  reference: {reference}
  sources: [vocals, bass]
  excerpt: {{start: 0.5, duration: 2.0}}
preparation: {{sample_rate: 32000, fade_ms: 10}}
design: {{trials_per_participant: 2, calibration: false, must_listen_fraction: 0.15}}
"""

ACR_YAML = """
name: Journey separation MOS
kind: acr
languages: [en, ja]
questions:
  - key: accuracy
    label: Separation accuracy
    scale: acr
  - key: contamination
    label: Contamination
    scale: acr
conditions:
  - {{key: zqtruth, role: hidden_reference}}
  - {{key: zqsystemalpha, folder: {sysA}}}
  - {{key: zqsystembeta, folder: {sysB}}}
stimuli:
  type: folders
  reference: {reference}
  items: track_random_source
  excerpt: {{start: 0.5, duration: 2.0}}
preparation: {{sample_rate: 32000, fade_ms: 10}}
design: {{trials_per_participant: 2, training: false, calibration: true, must_listen_fraction: 0.15}}
"""


@dataclass
class Live:
    url: str
    app: object
    public_ids: dict[str, str]
    secrets: list[str]  # strings that must never reach the participant


@dataclass
class Capture:
    """Everything the browser received."""

    texts: list[tuple[str, str]] = field(default_factory=list)

    def attach(self, page) -> None:
        def on_response(resp) -> None:
            head = "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
            self.texts.append((resp.url, f"{resp.url}\n{head}"))
            ctype = resp.headers.get("content-type", "")
            if any(t in ctype for t in ("html", "javascript", "json", "css", "text")):
                try:
                    self.texts.append((resp.url, resp.text()))
                except Exception:  # noqa: BLE001 - redirects and aborted bodies have none
                    pass

        page.on("response", on_response)

    def snapshot(self, page, label: str) -> None:
        self.texts.append((label, page.content()))
        self.texts.append((label, page.evaluate("() => JSON.stringify(Object.keys(window))")))


@pytest.fixture()
def live(tmp_path: Path) -> Iterator[Live]:
    from mosplatform.config import load_definition
    from mosplatform.extensions import db
    from mosplatform.models import Condition, Stimulus
    from mosplatform.services.importer import create_test
    from tests.conftest import make_app

    app = make_app("sqlite:///" + str(tmp_path / "journey.sqlite"), tmp_path, WTF_CSRF_ENABLED=True)
    dirs = make_musdb(tmp_path / "audio", tracks=3, seconds=3.0)
    public_ids = {}
    secrets: set[str] = {"hidden_reference", "low_anchor", "mid_anchor"}
    with app.app_context():
        for name, template in (("mushra", MUSHRA_YAML), ("acr", ACR_YAML)):
            path = tmp_path / f"{name}.yaml"
            path.write_text(
                template.format(**{k: str(v) for k, v in dirs.items()}), encoding="utf-8"
            )
            test = create_test(load_definition(path), open_now=True, compute_sdr=False)
            public_ids[name] = test.public_id
        for c in db.session.execute(select(Condition)).scalars():
            secrets.add(c.key)
        for s in db.session.execute(select(Stimulus)).scalars():
            secrets.add(s.content_hash)
            secrets.add(Path(s.path).name)
            if s.source_path:
                secrets.add(Path(s.source_path).name)
    secrets -= {"vocals.wav", "bass.wav", "drums.wav", "other.wav"}  # shared by every condition
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{server.server_port}", app, public_ids, sorted(secrets))
    finally:
        server.shutdown()
        thread.join(timeout=5)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def watch(page, errors: list[str]) -> None:
    """Collect script errors and console errors (CSP violations show up there)."""
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)


def shoot(page, screenshot, name: str) -> None:
    """Desktop and phone screenshots of the current page."""
    screenshot(page, f"journey-{name}-desktop")
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(150)
    screenshot(page, f"journey-{name}-phone")
    page.set_viewport_size(DESKTOP)


def trial_config(page) -> dict:
    return json.loads(page.locator("#trial-config").text_content())


def submit_form(page) -> None:
    with page.expect_navigation():
        page.click("form button[type=submit]")


def pass_intro(page, screenshot, shots: bool) -> None:
    """Welcome (consent) and instructions, and calibration when present."""
    expect(page.locator("input[name=consent]")).to_be_visible()
    if shots:
        shoot(page, screenshot, "welcome")
    page.check("input[name=consent]")
    submit_form(page)
    expect(page.locator(".shortcuts")).to_be_visible()
    if shots:
        shoot(page, screenshot, "instructions")
    submit_form(page)
    if page.locator("#calibration-form").count():
        if shots:
            shoot(page, screenshot, "calibration")
        if page.locator("input[name=volume_ok]").count():
            page.check("input[name=volume_ok]")
        submit_form(page)


def wait_next_page(page, old_url: str, old_position: int) -> None:
    """After "next": the page changes to another trial (or stage)."""
    page.wait_for_function(
        "([u, p]) => location.href !== u || (document.getElementById('trial-config') &&"
        " JSON.parse(document.getElementById('trial-config').textContent).position !== p)",
        arg=[old_url, old_position],
        timeout=20000,
    )
    page.wait_for_load_state("load")


def rate_mushra(page, scores: list[int]) -> None:
    expect(page.locator("#mushra")).to_be_visible(timeout=20000)
    page.click("#reference")
    page.wait_for_timeout(200)
    cols = page.locator(".mushra-col")
    for k in range(cols.count()):
        col = cols.nth(k)
        col.locator(".btn-stimulus").click()
        expect(col).to_have_class(re.compile(r"\bheard\b"), timeout=10000)
        col.locator("input").fill(str(scores[k]))


def rate_acr(page, answers: dict[str, int]) -> None:
    expect(page.locator("#questions")).to_be_visible(timeout=20000)
    cfg = trial_config(page)
    for qi, q in enumerate(cfg["questions"]):
        page.check(f"input[name='q-0-{qi}'][value='{answers[q['key']]}']")
    page.click("#play")
    expect(page.locator("#next")).to_be_enabled(timeout=10000)


def scan(capture: Capture, secrets: list[str]) -> None:
    assert len(secrets) > 8 and len(capture.texts) > 20
    assert any("/media/" in text for _, text in capture.texts)
    leaks = []
    for where, text in capture.texts:
        low = text.lower()
        for s in secrets:
            if s.lower() in low:
                leaks.append((s, where))
    assert not leaks, leaks[:10]


def stored_ratings(app, public_id: str):
    from mosplatform.extensions import db
    from mosplatform.models import Participant, Rating, Test, TrialStimulus

    with app.app_context():
        test = db.session.execute(select(Test).where(Test.public_id == public_id)).scalar_one()
        participants = (
            db.session.execute(select(Participant).where(Participant.test_id == test.id))
            .scalars()
            .all()
        )
        assert len(participants) == 1
        p = participants[0]
        rows = (
            db.session.execute(select(Rating).where(Rating.participant_id == p.id)).scalars().all()
        )
        positions = {
            (ts.trial_id, ts.stimulus_id): ts.position
            for t in p.trials
            for ts in db.session.execute(
                select(TrialStimulus).where(TrialStimulus.trial_id == t.id)
            ).scalars()
        }
        trials = {t.id: (t.position, t.kind) for t in p.trials}
        out = [
            (
                trials[r.trial_id][0],
                positions[(r.trial_id, r.stimulus_id)],
                r.question.key,
                r.raw_score,
            )
            for r in rows
        ]
        meta = {
            "stage": p.stage,
            "external_id": p.external_id,
            "code": p.completion_code,
            "trial_kinds": sorted(trials.values()),
        }
        return out, meta


def test_mushra_journey(browser, live, screenshot):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    watch(page, errors)
    capture = Capture()
    capture.attach(page)
    documents: list[str] = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document"
            else None)
    page.goto(f"{live.url}/t/{live.public_ids['mushra']}")
    pass_intro(page, screenshot, shots=True)

    entered: dict[int, list[int]] = {}
    media_urls: list[str] = []
    seen_positions = []
    dropped = {"n": 0}
    while page.locator("#trial-config").count():
        cfg = trial_config(page)
        pos = cfg["position"]
        seen_positions.append(pos)
        # Shown in place or loaded: the address, heading and progress are this trial's.
        assert page.url.endswith(f"/trial/{pos}"), page.url
        expect(page.locator("h1")).to_have_text(f"Trial {pos} of {cfg['total']}")
        expect(page.locator(".progress-text")).to_have_text(
            f"{cfg['progress']['done']} of {cfg['progress']['total']}")
        media_urls += [s["url"] for s in cfg["stimuli"]]
        n = len(cfg["stimuli"])
        scores = [(17 * (k + 1) + 11 * pos) % 90 + 5 for k in range(n)]
        if cfg["is_training"]:
            expect(page.locator(".banner-training")).to_be_visible()
            rate_mushra(page, scores)
            shoot(page, screenshot, "mushra-training")
        elif pos == 2:
            # Rate half, reload: the trial comes back unanswered and nothing was stored.
            rate_mushra(page, scores[: n // 2] + [50] * (n - n // 2))
            page.reload()
            assert trial_config(page)["position"] == pos
            rate_mushra(page, scores)
            shoot(page, screenshot, "mushra-trial")
        else:
            rate_mushra(page, scores)

            # Lose the first answer on the way back: the page retries with the same key.
            def drop_once(route) -> None:
                if dropped["n"] == 0:
                    dropped["n"] += 1
                    route.fetch()  # the server stores it ...
                    route.abort()  # ... but the browser never hears back
                else:
                    route.continue_()

            page.route("**/ratings", drop_once)
        capture.snapshot(page, f"trial {pos}")
        if not cfg["is_training"]:
            entered[pos] = scores
        url = page.url
        page.click("#next")
        wait_next_page(page, url, pos)
    page.unroute("**/ratings")
    assert dropped["n"] == 1
    assert seen_positions == [1, 2, 3]
    # Only the first trial and the reload were page loads: the answer to a trial
    # brings the next one, which the page shows in place.
    assert [u.rsplit("/", 1)[-1] for u in documents if "/trial/" in u] == ["1", "2"], documents
    expect(page.locator("h1")).to_have_text("Thank you!")
    shoot(page, screenshot, "done")
    capture.snapshot(page, "done")
    # The one response dropped on purpose is the only failed request.
    assert sum("ERR_FAILED" in e for e in errors) == 1, errors
    assert not [e for e in errors if "ERR_FAILED" not in e], errors

    rows, meta = stored_ratings(live.app, live.public_ids["mushra"])
    assert meta["stage"] == "done"
    assert meta["trial_kinds"][0] == (0, "training")
    keys = Counter((t, p, q) for t, p, q, _ in rows)
    assert all(c == 1 for c in keys.values()), "a rating was stored twice"
    expected = {
        (pos - 1, k, "quality"): float(s) for pos, sc in entered.items() for k, s in enumerate(sc)
    }
    assert {(t, p, q): s for t, p, q, s in rows} == expected  # training ratings are not stored

    scan(capture, live.secrets)
    # Another browser (another participant) cannot use these media URLs.
    other = browser.new_context()
    try:
        for url in media_urls[:3]:
            assert other.request.get(f"{live.url}{url}").status in (403, 404)
        assert context.request.get(f"{live.url}{media_urls[-1]}").status == 200
    finally:
        other.close()
        context.close()


def test_acr_journey_with_resume(browser, live, screenshot):
    context = browser.new_context(
        viewport=DESKTOP, locale="ja-JP", extra_http_headers={"Accept-Language": "ja,en;q=0.5"}
    )
    page = context.new_page()
    errors: list[str] = []
    watch(page, errors)
    capture = Capture()
    capture.attach(page)
    link = f"{live.url}/t/{live.public_ids['acr']}?PROLIFIC_PID=pp123&STUDY_ID=st9&SESSION_ID=se7"
    page.goto(link)
    assert page.locator("html").get_attribute("lang") == "ja"
    pass_intro(page, screenshot, shots=False)

    answers = {1: {"accuracy": 4, "contamination": 2}, 2: {"accuracy": 1, "contamination": 5}}
    cfg = trial_config(page)
    assert cfg["position"] == 1 and cfg["source_name"]
    expect(page.locator(".target-source")).to_contain_text(cfg["source_name"])
    rate_acr(page, answers[1])
    shoot(page, screenshot, "acr-trial")
    capture.snapshot(page, "acr 1")
    url = page.url
    page.click("#next")
    wait_next_page(page, url, 1)
    assert trial_config(page)["position"] == 2

    # Close the tab and come back with the same link: resume at trial 2.
    page.close()
    page = context.new_page()
    watch(page, errors)
    capture.attach(page)
    page.goto(link)
    assert trial_config(page)["position"] == 2
    rate_acr(page, answers[2])
    capture.snapshot(page, "acr 2")
    url = page.url
    page.click("#next")
    wait_next_page(page, url, 2)
    # Going back to an answered trial does not ask it again.
    page.goto(url)
    assert not page.locator("#trial-config").count()
    if page.locator(".questionnaire").count():
        shoot(page, screenshot, "questionnaire")
        submit_form(page)
    expect(page.locator("#completion-code, .lead").first).to_be_visible()
    assert not errors, errors
    context.close()

    rows, meta = stored_ratings(live.app, live.public_ids["acr"])
    assert meta["external_id"] == "pp123"
    keys = Counter((t, p, q) for t, p, q, _ in rows)
    assert all(c == 1 for c in keys.values())
    assert {(t, p, q): s for t, p, q, s in rows} == {
        (pos - 1, 0, q): float(v) for pos, a in answers.items() for q, v in a.items()
    }
    scan(capture, live.secrets)
