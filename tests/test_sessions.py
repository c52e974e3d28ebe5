"""Signed-cookie sessions that remember each verified cookie (mosplatform.sessions)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask, session

from mosplatform.sessions import RememberingSessionInterface


@pytest.fixture
def site():
    app = Flask(__name__)
    app.secret_key = "test-key"
    app.session_interface = RememberingSessionInterface(max_remembered=2)

    @app.get("/set/<value>")
    def set_value(value: str):
        session["value"] = value
        session["nested"] = {"v": value}
        return "ok"

    @app.get("/get")
    def get_value():
        return f"{session.get('value')}|{session.get('nested')}"

    @app.get("/mutate")
    def mutate():
        session["nested"]["v"] = "changed in place"  # in place: not saved
        return session["nested"]["v"]

    return app


def _cookie(client) -> str:
    return client.get_cookie("session").value


def test_a_cookie_is_decoded_once_and_each_request_gets_its_own_copy(site, monkeypatch):
    client = site.test_client()
    client.get("/set/a")
    calls = []
    real = site.session_interface.get_signing_serializer(site)
    original = type(real).loads
    monkeypatch.setattr(type(real), "loads",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    assert client.get("/get").text == "a|{'v': 'a'}"
    assert client.get("/mutate").text == "changed in place"
    assert client.get("/get").text == "a|{'v': 'a'}"  # the remembered data is untouched
    assert len(calls) == 1


def test_tampered_foreign_and_expired_cookies_give_an_empty_session(site):
    client = site.test_client()
    client.get("/set/a")
    good = _cookie(client)
    client.set_cookie("session", good[:-2] + ("AA" if not good.endswith("AA") else "BB"))
    assert client.get("/get").text == "None|None"
    other = Flask(__name__)
    other.secret_key = "another-key"
    other.session_interface = RememberingSessionInterface()
    foreign = other.session_interface.get_signing_serializer(other).dumps({"value": "x"})
    client.set_cookie("session", foreign)
    assert client.get("/get").text == "None|None"
    # Remembered while valid, refused once older than the session lifetime.
    client.set_cookie("session", good)
    assert client.get("/get").text == "a|{'v': 'a'}"
    site.permanent_session_lifetime = timedelta(seconds=-1)
    assert client.get("/get").text == "None|None"


def test_a_new_secret_key_forgets_what_was_decoded(site):
    client = site.test_client()
    client.get("/set/a")
    assert client.get("/get").text.startswith("a|")
    site.secret_key = "rotated"
    assert client.get("/get").text == "None|None"


def test_memory_is_bounded(site):
    clients = [site.test_client() for _ in range(4)]
    for i, c in enumerate(clients):
        c.get(f"/set/v{i}")
        c.get("/get")
    assert len(site.session_interface._decoded) <= 2
    assert clients[0].get("/get").text.startswith("v0|")  # decoded again when needed
