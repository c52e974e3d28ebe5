"""Tests list, new test from YAML, status actions, duplicate, collaborators, links, preview."""

from __future__ import annotations

import html
import io
import secrets

from adminfixtures import files_yaml, login, write_wavs
from itsdangerous import URLSafeTimedSerializer

from mosplatform.extensions import db
from mosplatform.models import Participant, Rating, Stimulus, Trial
from mosplatform.models import Test as TestRow
from mosplatform.models import TestCollaborator as Collaborator


def _count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.query(model).count()


def test_tests_list_shows_own_shared_and_all_for_superuser(app, world):
    other = TestRow(public_id="otherpub1", name="Stranger's own test", kind="acr",
                 status="draft", owner_id=world.stranger, definition={}, settings={}, seed=0)
    db.session.add(other)
    db.session.commit()
    expectations = {"owner": (True, False), "collab": (True, False),
                    "stranger": (False, True), "root": (True, True)}
    for user, (sees_seeded, sees_other) in expectations.items():
        client = app.test_client()
        login(client, user)
        page = client.get("/admin/").data.decode()
        assert ("Seeded ACR" in page) is sees_seeded, user
        assert ("Stranger&#39;s own test" in page) is sees_other, user
    client = app.test_client()
    login(client, "collab")
    assert "shared" in client.get("/admin/").data.decode()


def _new_test(client, **data):  # type: ignore[no-untyped-def]
    return client.post("/admin/tests/new", data=data, content_type="multipart/form-data")


def test_bad_yaml_shows_the_problem_and_creates_nothing(app, world):
    client = app.test_client()
    login(client, "owner")
    before = (_count(TestRow), _count(Stimulus))
    resp = _new_test(client, definition_text="name: [unclosed\nkind: acr\n")
    assert resp.status_code == 422
    page = html.unescape(resp.data.decode())
    assert "not valid YAML" in page and "line 2, column 5" in page
    assert "Nothing was changed" in page
    assert (_count(TestRow), _count(Stimulus)) == before


def test_invalid_definition_lists_every_problem(app, world):
    client = app.test_client()
    login(client, "owner")
    text = ("name: Broken\nkind: mushra\nquestions: []\n"
            "conditions:\n  - {key: sysA, role: wizard}\n"
            "stimuli: {type: files, items: [{key: a, files: {sysA: a.wav}}]}\n")
    resp = _new_test(client, definition_text=text)
    assert resp.status_code == 422
    page = html.unescape(resp.data.decode())
    assert "questions: List should have at least 1 item" in page
    assert "conditions[0].role:" in page
    assert "pasted definition" in page
    assert _count(TestRow) == 1


def test_uploaded_file_problems_name_the_file(app, world):
    client = app.test_client()
    login(client, "owner")
    resp = _new_test(client, definition_file=(io.BytesIO(b"kind: acr\n"), "my-test.yaml"))
    assert resp.status_code == 422
    page = html.unescape(resp.data.decode())
    assert "my-test.yaml" in page and "name: Field required" in page
    resp = _new_test(client, definition_file=(io.BytesIO(b"\x00\x01binary"), "x.yaml"))
    assert "not a text (YAML) file" in html.unescape(resp.data.decode())
    resp = _new_test(client)
    assert resp.status_code == 422
    assert "upload a YAML definition file or paste its text" in resp.data.decode()
    assert _count(TestRow) == 1


def test_import_problems_are_listed_and_nothing_created(app, world, tmp_path):
    client = app.test_client()
    login(client, "owner")
    wavs = write_wavs(tmp_path / "audio")
    wavs["item0"]["sysA"] = tmp_path / "audio" / "missing.wav"
    resp = _new_test(client, definition_text=files_yaml(wavs))
    assert resp.status_code == 422
    page = html.unescape(resp.data.decode())
    assert "missing.wav not found" in page
    assert _count(TestRow) == 1 and _count(Stimulus) == 6


def test_new_test_from_pasted_yaml_with_relative_paths(app_with, tmp_path):
    from adminfixtures import add_admin

    app = app_with(IMPORT_ROOT=str(tmp_path))
    add_admin("owner")
    db.session.commit()
    client = app.test_client()
    login(client, "owner")
    wavs = write_wavs(tmp_path / "audio", n_items=2)
    resp = _new_test(client, definition_text=files_yaml(wavs, relative_to=tmp_path),
                     open_now="y")
    assert resp.status_code == 302, html.unescape(resp.data.decode())[-1500:]
    test = db.session.execute(db.select(TestRow)).scalar_one()
    assert resp.location == f"/admin/tests/{test.id}"
    assert test.owner.username == "owner" and test.status == "open"
    assert len(test.items) == 2 and len(test.conditions) == 2
    assert {s.source_path for i in test.items for s in i.stimuli} == {
        str(p) for files in wavs.values() for p in files.values()}
    assert client.get(resp.location).status_code == 200


def test_new_test_from_uploaded_file_stays_draft(app, world, tmp_path):
    client = app.test_client()
    login(client, "collab")
    wavs = write_wavs(tmp_path / "audio")
    data = files_yaml(wavs, name="Uploaded").encode()
    resp = _new_test(client, definition_file=(io.BytesIO(data), "def.yaml"))
    assert resp.status_code == 302
    test = db.session.execute(db.select(TestRow).where(TestRow.name == "Uploaded")).scalar_one()
    assert test.status == "draft" and test.owner_id == world.collaborator


def test_status_actions(app, world):
    client = app.test_client()
    login(client, "owner")
    url = f"/admin/tests/{world.test}/status"

    def status() -> str:
        db.session.expire_all()
        return db.session.get(TestRow, world.test).status

    for action, expected in (("pause", "paused"), ("open", "open"), ("close", "closed"),
                             ("pause", "closed"), ("open", "open")):
        assert client.post(url, data={"action": action}).status_code == 302
        assert status() == expected, action
    assert client.post(url, data={"action": "delete"}).status_code == 400
    assert status() == "open"
    page = client.get(f"/admin/tests/{world.test}").data.decode()
    assert 'value="pause"' in page and 'value="close"' in page and 'value="open"' not in page


def test_duplicate_shares_stimuli_and_copies_no_participants(app, world):
    client = app.test_client()
    login(client, "root")
    resp = client.post(f"/admin/tests/{world.test}/duplicate")
    copy_id = int(resp.location.rsplit("/", 1)[1])
    db.session.expire_all()
    original, copy = db.session.get(TestRow, world.test), db.session.get(TestRow, copy_id)
    assert copy.status == "draft" and copy.owner_id == world.superuser
    assert copy.public_id != original.public_id and copy.name == "Seeded ACR (copy)"
    assert copy.definition["name"] == copy.name
    assert copy.participants == [] and copy.collaborators == []
    assert [q.key for q in copy.questions] == [q.key for q in original.questions]
    assert [(c.key, c.role) for c in copy.conditions] == [
        (c.key, c.role) for c in original.conditions]

    def files(test):  # type: ignore[no-untyped-def]
        return sorted((i.key, s.condition.key, s.content_hash, s.path)
                      for i in test.items for s in i.stimuli)

    assert files(copy) == files(original)
    assert {s.id for i in copy.items for s in i.stimuli}.isdisjoint(
        {s.id for i in original.items for s in i.stimuli})


def test_collaborators_add_and_remove(app, world):
    owner = app.test_client()
    login(owner, "owner")
    extra = app.test_client()
    login(extra, "extra")
    url = f"/admin/tests/{world.test}"
    assert extra.get(url).status_code == 404
    owner.post(url + "/collaborators", data={"username": "extra"})
    assert extra.get(url).status_code == 200
    assert extra.post(url + "/status", data={"action": "close"}).status_code == 403
    # Unknown admins, the owner and duplicates are refused with a message.
    for name, message in (("nobody", "no admin named"), ("owner", "owns this test"),
                          ("extra", "already a collaborator")):
        page = owner.post(url + "/collaborators", data={"username": name},
                          follow_redirects=True).data.decode()
        assert message in html.unescape(page), name
    assert _count(Collaborator) == 2
    owner.post(f"{url}/collaborators/{world.extra}/remove")
    assert extra.get(url).status_code == 404
    assert _count(Collaborator) == 1


def test_participant_links_with_crowd_presets(app, world):
    client = app.test_client()
    login(client, "collab")
    page = html.unescape(client.get(f"/admin/tests/{world.test}").data.decode())
    base = f"http://localhost/t/{world.public_id}"
    assert f'value="{base}"' in page
    prolific = (f"{base}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}"
                "&SESSION_ID={{%SESSION_ID%}}")
    assert prolific in page
    assert "https://app.prolific.com/submissions/complete?cc=C0DE42" in page
    assert f"{base}?participant=WORKER_ID" in page
    # The Prolific link, as Prolific fills it in, records the worker's id.
    participant = app.test_client()
    resp = participant.get(f"/t/{world.public_id}?PROLIFIC_PID=worker-77&STUDY_ID=s1"
                           "&SESSION_ID=x9")
    assert resp.status_code == 302
    p = db.session.execute(db.select(Participant).where(
        Participant.external_id == "worker-77")).scalar_one()
    assert p.study_id == "s1" and p.session_id == "x9" and not p.is_preview


def _csrf(client) -> str:  # type: ignore[no-untyped-def]
    """A valid CSRF token for ``client``'s session (the API checks it even in tests),
    made the way Flask-WTF makes it: the session's raw token, signed."""
    raw = secrets.token_hex(20)
    with client.session_transaction() as sess:
        raw = sess.setdefault("csrf_token", raw)
    return URLSafeTimedSerializer(client.application.secret_key,
                                  salt="wtf-csrf-token").dumps(raw)


def _answer_first_trial(client, participant: Participant):  # type: ignore[no-untyped-def]
    trial = db.session.execute(db.select(Trial).where(
        Trial.participant_id == participant.id).order_by(Trial.position)).scalars().first()
    ratings = [{"stimulus": ts.position, "question": "quality", "score": 4}
               for ts in trial.stimuli if ts.position >= 0]
    return client.post(f"/api/p/{participant.token}/trial/{trial.position + 1}/ratings",
                       json={"ratings": ratings}, headers={"X-CSRFToken": _csrf(client)})


def test_preview_creates_preview_participant_whose_ratings_are_not_stored(app, world):
    client = app.test_client()
    login(client, "collab")
    ratings_before = _count(Rating)
    resp = client.post(f"/admin/tests/{world.test}/preview")
    assert resp.status_code == 302 and resp.location.startswith("/p/")
    token = resp.location.split("/")[2]
    preview = db.session.execute(db.select(Participant).where(
        Participant.token == token)).scalar_one()
    assert preview.is_preview and preview.trials
    with client.session_transaction() as sess:
        assert sess["participants"][world.public_id] == token
    answer = _answer_first_trial(client, preview)
    assert answer.status_code == 200, answer.data
    assert answer.get_json()["stored"] == 0
    db.session.expire_all()
    assert _count(Rating) == ratings_before
    assert preview.trials[0].completed_at is not None
    # Control: a real participant's identical answer is stored.
    real = app.test_client()
    token = real.get(f"/t/{world.public_id}").location.split("/")[2]
    participant = db.session.execute(db.select(Participant).where(
        Participant.token == token)).scalar_one()
    assert _answer_first_trial(real, participant).get_json()["stored"] > 0
    assert _count(Rating) > ratings_before
    # Previews do not count as participants on the dashboard.
    progress = client.get(f"/admin/tests/{world.test}/progress.json").get_json()
    assert progress["participants"]["started"] == 4  # 3 seeded + the real one


def test_preview_of_a_closed_or_empty_test(app, world):
    client = app.test_client()
    login(client, "owner")
    client.post(f"/admin/tests/{world.test}/status", data={"action": "close"})
    resp = client.post(f"/admin/tests/{world.test}/preview")
    assert resp.location.startswith("/p/")  # previews work whatever the status
    empty = TestRow(public_id="emptypub", name="Empty", kind="acr", status="draft",
                 owner_id=world.owner, definition={}, settings={}, seed=0)
    db.session.add(empty)
    db.session.commit()
    resp = client.post(f"/admin/tests/{empty.id}/preview", follow_redirects=True)
    assert "Cannot preview" in resp.data.decode()
