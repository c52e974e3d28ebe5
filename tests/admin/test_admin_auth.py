"""Login, logout, throttling, the ``next`` parameter, session protection and CSRF."""

from __future__ import annotations

import pytest
from adminfixtures import PASSWORD, add_admin, csrf_from, login, seed_world


def test_login_with_scrypt_account_and_logout(app, client):
    from mosplatform.services.accounts import create_admin

    user = create_admin("alice", "correct horse battery")
    assert user.password_hash.startswith("scrypt:")
    assert client.get("/admin/").location.startswith("/admin/login")
    resp = client.post("/admin/login", data={"username": "alice",
                                             "password": "correct horse battery"})
    assert resp.status_code == 302 and resp.location == "/admin/"
    page = client.get("/admin/")
    assert page.status_code == 200 and b"alice" in page.data
    assert client.post("/admin/logout").location.startswith("/admin/login")
    assert client.get("/admin/").location.startswith("/admin/login")


def test_wrong_password_and_unknown_user_are_refused(app, client):
    add_admin("bob")
    from mosplatform.extensions import db

    db.session.commit()
    for name, password in (("bob", "wrong-password"), ("nobody", PASSWORD)):
        resp = client.post("/admin/login", data={"username": name, "password": password})
        assert resp.status_code == 401
        assert b"Unknown username or wrong password" in resp.data
    assert client.get("/admin/").location.startswith("/admin/login")


def test_login_throttled_after_limit(app_with):
    from mosplatform.extensions import db

    app = app_with(LOGIN_RATE_LIMIT=3)
    add_admin("carol")
    add_admin("dave")
    db.session.commit()
    client = app.test_client()
    for _ in range(3):
        resp = client.post("/admin/login", data={"username": "carol", "password": "bad"})
        assert resp.status_code == 401
    # Blocked now, even with the right password.
    resp = client.post("/admin/login", data={"username": "carol", "password": PASSWORD})
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert client.get("/admin/").location.startswith("/admin/login")
    # Another account from the same address is not blocked by carol's failures.
    assert client.post("/admin/login", data={"username": "dave",
                                             "password": PASSWORD}).status_code == 302
    # Spraying one password over many accounts from one address hits the address-wide
    # limit (5 x 3 = 15 failures, 3 of them carol's).
    for i in range(14):
        add_admin(f"u{i}")
    db.session.commit()
    other = app.test_client()
    codes = [other.post("/admin/login", data={"username": f"u{i}", "password": "x"}
                        ).status_code for i in range(14)]
    assert codes[:12] == [401] * 12 and codes[12:] == [429, 429]


@pytest.mark.parametrize("target,expected", [
    ("/admin/tests/new", "/admin/tests/new"),
    ("/admin/?x=1", "/admin/?x=1"),
    ("//evil.example/admin", "/admin/"),
    ("https://evil.example/", "/admin/"),
    ("/\\evil.example", "/admin/"),
    ("javascript:alert(1)", "/admin/"),
    ("admin/relative", "/admin/"),
])
def test_next_only_to_local_paths(app, client, target, expected):
    from mosplatform.extensions import db

    add_admin("erin")
    db.session.commit()
    resp = client.post("/admin/login", query_string={"next": target},
                       data={"username": "erin", "password": PASSWORD})
    assert resp.status_code == 302
    assert resp.location == expected


def test_login_redirect_keeps_local_next(app, client):
    from mosplatform.extensions import db

    add_admin("frank")
    db.session.commit()
    resp = client.get("/admin/tests/new?x=1")
    assert resp.location == "/admin/login?next=/admin/tests/new?x%3D1"
    resp = client.post(resp.location, data={"username": "frank", "password": PASSWORD})
    assert resp.location == "/admin/tests/new?x=1"


def test_strong_session_protection_drops_a_stolen_cookie(app, client):
    """The session cookie replayed from another browser (user agent) is not logged in."""
    from mosplatform.extensions import db

    add_admin("grace")
    db.session.commit()
    login(client, "grace")
    assert client.get("/admin/").status_code == 200
    resp = client.get("/admin/", headers={"User-Agent": "another browser"})
    assert resp.status_code == 302 and resp.location.startswith("/admin/login")


def test_csrf_enforced_on_admin_forms(app_with):
    from mosplatform.extensions import db
    from mosplatform.models import Test

    app = app_with(WTF_CSRF_ENABLED=True)
    world = seed_world()
    client = app.test_client()
    # The login form itself needs the token.
    resp = client.post("/admin/login", data={"username": "owner", "password": PASSWORD})
    assert resp.status_code == 400
    token = csrf_from(client.get("/admin/login").data)
    resp = client.post("/admin/login", data={"username": "owner", "password": PASSWORD,
                                             "csrf_token": token})
    assert resp.status_code == 302
    url = f"/admin/tests/{world.test}/status"
    resp = client.post(url, data={"action": "close"})
    assert resp.status_code == 400
    db.session.expire_all()
    assert db.session.get(Test, world.test).status == "open"
    resp = client.post(url, data={"action": "close", "csrf_token": "forged"})
    assert resp.status_code == 400
    token = csrf_from(client.get(f"/admin/tests/{world.test}").data)
    resp = client.post(url, data={"action": "close", "csrf_token": token})
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(Test, world.test).status == "closed"
    # Every POST form in the pages carries the token.
    for page in (f"/admin/tests/{world.test}",
                 f"/admin/tests/{world.test}/participants/{world.finished}",
                 "/admin/tests/new"):
        html = client.get(page).data.decode()
        forms = html.count('method="post"')
        assert forms and html.count('name="csrf_token"') >= forms, page
