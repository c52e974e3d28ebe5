"""Progress pages, the per-participant view, exclusion and the downloads."""

from __future__ import annotations

import html
import importlib.util
import io
import zipfile

import pandas as pd
import pytest
import yaml
from adminfixtures import login

from mosplatform.admin.operations import EXCLUSION_EVENT
from mosplatform.extensions import db
from mosplatform.models import Event, Participant, Rating
from mosplatform.models import Test as TestRow
from mosplatform.services.export import RATING_COLUMNS

ANALYSIS = importlib.util.find_spec("mosplatform.analysis.report") is not None


def _participant(pid: int) -> Participant:
    db.session.expire_all()
    return db.session.get(Participant, pid)


def test_progress_json_matches_the_seeded_facts(app, world):
    client = app.test_client()
    login(client, "collab")
    data = client.get(f"/admin/tests/{world.test}/progress.json").get_json()
    assert data["participants"] == {"started": 3, "finished": 1, "excluded": 1,
                                    "returned": 0, "in_progress": 1}
    votes = data["votes"]
    assert votes["target"] == 4
    assert [c["key"] for c in votes["conditions"]] == ["ref", "sysA", "sysB"]
    cells = [[cell["votes"] for cell in row] for row in votes["cells"]]
    assert cells == [[0, 1, 1], [1, 0, 0]]
    assert votes["cells"][1][1]["pending"] == 1
    assert data["trial_time"]["median_s"] == pytest.approx(20.0)
    assert {s["check"]: (s["taken"], s["passed"]) for s in data["screening"]} == {
        "headphone_check": (3, 1), "gold": (1, 1)}


def test_progress_page_renders_heatmap_and_polls(app, world):
    client = app.test_client()
    login(client, "owner")
    page = client.get(f"/admin/tests/{world.test}/progress").data.decode()
    # 1 vote of 4 -> fill-2; the JS endpoint and the static script are wired.
    cell = f'data-cell="{world.items["item1"]}:{world.conditions["sysA"]}"'
    assert cell in page and 'class="fill-2"' in page
    assert f'data-progress-url="/admin/tests/{world.test}/progress.json"' in page
    assert "/static/js/admin/dashboard.js" in page and "<script>" not in page
    assert "style=" not in page  # the CSP allows no inline styles
    assert "20.0 s" in page


def test_participants_list_hides_previews_by_default(app, world):
    client = app.test_client()
    login(client, "collab")
    preview = _participant(world.preview)
    page = client.get(f"/admin/tests/{world.test}/participants").data.decode()
    assert preview.token[:12] not in page
    assert _participant(world.finished).token[:12] in page
    page = client.get(f"/admin/tests/{world.test}/participants?preview=1").data.decode()
    assert preview.token[:12] in page


def test_participant_view_shows_answers_events_and_screening(app, world):
    client = app.test_client()
    login(client, "collab")
    page = html.unescape(client.get(
        f"/admin/tests/{world.test}/participants/{world.in_progress}").data.decode())
    assert "headphone_check" in page and "failed" in page
    assert '"note": "real"' in page
    assert "item1" in page and "sysB" in page
    assert "Exclude" not in page  # collaborators only view
    page = client.get(f"/admin/tests/{world.test}/participants/{world.finished}").data.decode()
    assert "passed" in page


def test_exclude_and_include_are_recorded(app, world):
    client = app.test_client()
    login(client, "owner")
    url = f"/admin/tests/{world.test}/participants/{world.finished}"
    assert "Exclude" in client.get(url).data.decode()
    resp = client.post(url + "/exclusion", data={"action": "exclude",
                                                  "reason": "rated the hidden reference 20"})
    assert resp.status_code == 302
    p = _participant(world.finished)
    assert p.excluded and p.status == "excluded"
    assert p.exclusion_reason == "rated the hidden reference 20"
    progress = client.get(f"/admin/tests/{world.test}/progress.json").get_json()
    assert progress["participants"]["excluded"] == 2
    assert progress["votes"]["total_votes"] == 1  # only the in-progress participant's vote
    ratings = pd.read_csv(io.BytesIO(client.get(
        f"/admin/tests/{world.test}/download/ratings.csv").data))
    mine = ratings[ratings.exclusion_reason == "rated the hidden reference 20"]
    assert len(mine) == 2 and mine.excluded.all()

    client.post(url + "/exclusion", data={"action": "include", "reason": "mistake"})
    p = _participant(world.finished)
    assert not p.excluded and p.status == "finished" and p.exclusion_reason is None
    audit = db.session.execute(db.select(Event).where(
        Event.participant_id == world.finished, Event.kind == EXCLUSION_EVENT
    ).order_by(Event.id)).scalars().all()
    assert [(e.payload["excluded"], e.payload["reason"], e.payload["by"]) for e in audit] == [
        (True, "rated the hidden reference 20", "owner"), (False, "mistake", "owner")]


def test_exclusion_needs_a_reason_and_a_known_action(app, world):
    client = app.test_client()
    login(client, "owner")
    url = f"/admin/tests/{world.test}/participants/{world.in_progress}/exclusion"
    for data in ({"action": "exclude", "reason": ""}, {"action": "exclude", "reason": "   "},
                 {"action": "ban", "reason": "x"}, {"action": "exclude", "reason": "x" * 501}):
        client.post(url, data=data)
        p = _participant(world.in_progress)
        assert not p.excluded and p.status == "started", data


def test_downloads(app, world):
    client = app.test_client()
    login(client, "collab")
    base = f"/admin/tests/{world.test}/download/"
    resp = client.get(base + "ratings.csv")
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert f"{world.public_id}-ratings.csv" in resp.headers["Content-Disposition"]
    ratings = pd.read_csv(io.BytesIO(resp.data))
    assert list(ratings.columns) == RATING_COLUMNS
    # 4 stored ratings of real participants (the excluded one flagged); never the preview's.
    assert len(ratings) == 4 and ratings.excluded.sum() == 1
    preview = _participant(world.preview).token[:12]
    assert preview not in set(ratings.participant)
    assert db.session.query(Rating).filter_by(participant_id=world.preview).count() == 1
    parquet = pd.read_parquet(io.BytesIO(client.get(base + "ratings.parquet").data))
    pd.testing.assert_frame_equal(
        parquet[["participant", "item", "condition", "score"]].reset_index(drop=True),
        ratings[["participant", "item", "condition", "score"]].reset_index(drop=True),
        check_dtype=False)
    participants = pd.read_csv(io.BytesIO(client.get(base + "participants.csv").data))
    assert len(participants) == 3 and preview not in set(participants.participant)
    events = pd.read_csv(io.BytesIO(client.get(base + "events.csv").data))
    assert events["data.note"].tolist() == ["real"]
    definition = yaml.safe_load(client.get(base + "definition.yaml").data)
    assert definition == db.session.get(TestRow, world.test).definition
    assert client.get(base + "secrets.txt").status_code == 404


@pytest.mark.skipif(not ANALYSIS, reason="mosplatform.analysis is not importable")
def test_report_html_and_zip(app, world):
    client = app.test_client()
    login(client, "owner")
    resp = client.get(f"/admin/tests/{world.test}/report")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert "script-src" not in resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert "sysA" in resp.data.decode()
    archive = zipfile.ZipFile(io.BytesIO(client.get(
        f"/admin/tests/{world.test}/report.zip").data))
    assert "report/report.html" in archive.namelist()


def test_report_without_ratings_is_a_clear_409(app, world):
    client = app.test_client()
    login(client, "owner")
    copy = client.post(f"/admin/tests/{world.test}/duplicate").location
    resp = client.get(copy + "/report")
    assert resp.status_code == (409 if ANALYSIS else 503)


def test_participants_list_pages(app, world, monkeypatch):
    monkeypatch.setattr("mosplatform.admin.views.PARTICIPANTS_PER_PAGE", 2)
    client = app.test_client()
    login(client, "owner")
    url = f"/admin/tests/{world.test}/participants"
    first, second = client.get(url).data.decode(), client.get(url + "?page=2").data.decode()
    tokens = {pid: _participant(pid).token[:12]
              for pid in (world.finished, world.in_progress, world.excluded)}
    assert "Page 1 of 2 (3 participants)" in first and "Page 2 of 2" in second
    on_first = {pid for pid, tok in tokens.items() if tok in first}
    on_second = {pid for pid, tok in tokens.items() if tok in second}
    assert len(on_first) == 2 and len(on_second) == 1 and not on_first & on_second
