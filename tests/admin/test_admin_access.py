"""Access control over every admin URL, for every kind of visitor.

Anonymous visitors and participants (who only hold a participant session) are sent
to the login page (401 for the JSON endpoint); an admin who is neither owner nor
collaborator gets 404 for the test's URLs; a collaborator views but cannot change;
the owner and a superuser can do everything.
"""

from __future__ import annotations

import importlib.util

import pytest
from adminfixtures import World, login

ANALYSIS = importlib.util.find_spec("mosplatform.analysis.report") is not None


@pytest.fixture
def db_url(tmp_path) -> str:
    """SQLite only: who may reach a URL does not depend on the database (the queries
    behind the pages run on both backends in the other test modules)."""
    return "sqlite:///" + str(tmp_path / "access.sqlite")


@pytest.fixture
def quick_report(monkeypatch):  # type: ignore[no-untyped-def]
    """A one-line report instead of the real analysis (tested in test_admin_participants):
    this module is about who may fetch it, not what it says."""
    if not ANALYSIS:
        return

    def build_report(df, out_dir, definition=None, **kwargs):  # type: ignore[no-untyped-def]
        path = out_dir / "report.html"
        path.write_text(f"<html><body>{len(df)} ratings</body></html>", encoding="utf-8")
        return path

    monkeypatch.setattr("mosplatform.analysis.build_report", build_report)

# (method, url template, form data, what it needs, status when allowed)
# needs: "login" = any admin, "view" = owner/collaborator/superuser, "edit" = owner/superuser
CASES = [
    ("GET", "/admin/", None, "login", 200),
    ("GET", "/admin/tests/new", None, "login", 200),
    ("POST", "/admin/tests/new", {}, "login", 422),
    ("POST", "/admin/logout", {}, "login", 302),
    ("GET", "/admin/uploads", None, "login", 200),
    ("POST", "/admin/uploads", {}, "login", 400),
    ("GET", "/admin/tests/{test}", None, "view", 200),
    ("GET", "/admin/tests/{test}/progress", None, "view", 200),
    ("GET", "/admin/tests/{test}/progress.json", None, "view", 200),
    ("GET", "/admin/tests/{test}/participants", None, "view", 200),
    ("GET", "/admin/tests/{test}/participants/{participant}", None, "view", 200),
    ("GET", "/admin/tests/{test}/download/ratings.csv", None, "view", 200),
    ("GET", "/admin/tests/{test}/download/ratings.parquet", None, "view", 200),
    ("GET", "/admin/tests/{test}/download/participants.csv", None, "view", 200),
    ("GET", "/admin/tests/{test}/download/events.csv", None, "view", 200),
    ("GET", "/admin/tests/{test}/download/definition.yaml", None, "view", 200),
    ("GET", "/admin/tests/{test}/report", None, "view", 200 if ANALYSIS else 503),
    ("GET", "/admin/tests/{test}/report.zip", None, "view", 200 if ANALYSIS else 503),
    ("POST", "/admin/tests/{test}/preview", {}, "view", 302),
    ("POST", "/admin/tests/{test}/status", {"action": "pause"}, "edit", 302),
    ("POST", "/admin/tests/{test}/duplicate", {}, "edit", 302),
    ("POST", "/admin/tests/{test}/collaborators", {"username": "extra"}, "edit", 302),
    ("POST", "/admin/tests/{test}/collaborators/{collaborator}/remove", {}, "edit", 302),
    ("POST", "/admin/tests/{test}/participants/{participant}/exclusion",
     {"action": "exclude", "reason": "left early"}, "edit", 302),
]
# Participant-facing roles first, the ones that may change things last.
ROLES = ("anonymous", "participant", "stranger", "collab", "root", "owner")


def _url(template: str, world: World) -> str:
    return template.format(test=world.test, participant=world.finished,
                           collaborator=world.collaborator)


def _client_for(app, role: str, world: World):  # type: ignore[no-untyped-def]
    client = app.test_client()
    if role == "participant":
        resp = client.get(f"/t/{world.public_id}")
        assert resp.status_code == 302 and resp.location.startswith("/p/")
        with client.session_transaction() as sess:
            assert sess.get("participants") and "_user_id" not in sess
    elif role != "anonymous":
        login(client, role)
    return client


def _expected(role: str, needs: str, allowed: int) -> int | str:
    if role in ("anonymous", "participant"):
        return "login"
    if role in ("owner", "root") or needs == "login":
        return allowed
    if role == "stranger":
        return 404
    return allowed if needs == "view" else 403  # collaborator


@pytest.mark.parametrize("method,template,data,needs,allowed", CASES,
                         ids=[f"{m} {t}" for m, t, *_ in CASES])
def test_every_role_on_every_admin_url(app, world, quick_report, method, template, data, needs,
                                       allowed):
    url = _url(template, world)
    for role in ROLES:
        client = _client_for(app, role, world)
        resp = client.open(url, method=method, data=data)
        want = _expected(role, needs, allowed)
        if want == "login":
            if url.endswith(".json"):
                assert resp.status_code == 401, (role, resp.status_code)
            else:
                assert resp.status_code == 302, (role, resp.status_code)
                assert resp.location.startswith("/admin/login"), (role, resp.location)
        else:
            assert resp.status_code == want, (role, url, resp.status_code, resp.data[:300])
            if template == "/admin/logout":
                assert client.get("/admin/").location.startswith("/admin/login")
            elif resp.status_code == 302:
                assert not resp.location.startswith("/admin/login"), (role, resp.location)


def test_cases_cover_every_admin_route(app):
    """A new admin URL without an access-control case fails here."""
    from werkzeug.routing import RequestRedirect

    adapter = app.url_map.bind("localhost")
    covered = set()
    for method, template, *_ in CASES:
        url = template.format(test=1, participant=1, collaborator=1)
        try:
            endpoint, _ = adapter.match(url, method=method)
        except RequestRedirect:  # pragma: no cover - a case with a wrong URL
            pytest.fail(f"{url} redirects")
        covered.add((endpoint, method))
    routes = {(rule.endpoint, m) for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith("admin.") and rule.endpoint != "admin.login"
              for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes - covered == set()


def test_participant_cannot_reach_admin_even_with_forged_user_id(app, world):
    """A participant session that sets ``_user_id`` by hand is still refused (no ``_id``
    matching the browser under strong session protection, and a wrong id is no one)."""
    client = _client_for(app, "participant", world)
    with client.session_transaction() as sess:
        sess["_user_id"] = "999999"
    resp = client.get(f"/admin/tests/{world.test}")
    assert resp.status_code == 302 and resp.location.startswith("/admin/login")


def test_missing_test_is_404_for_everyone(app, world):
    client = _client_for(app, "root", world)
    assert client.get("/admin/tests/999999").status_code == 404


def test_participant_of_another_test_is_404(app, world):
    from mosplatform.admin.operations import duplicate_test
    from mosplatform.extensions import db
    from mosplatform.models import AdminUser, Test

    other = duplicate_test(db.session.get(Test, world.test), db.session.get(AdminUser,
                                                                            world.owner))
    client = _client_for(app, "owner", world)
    url = f"/admin/tests/{other.id}/participants/{world.finished}"
    assert client.get(url).status_code == 404
    resp = client.post(url + "/exclusion", data={"action": "exclude", "reason": "x"})
    assert resp.status_code == 404
