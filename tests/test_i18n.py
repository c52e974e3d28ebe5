"""UI strings: complete and consistent catalogues, lookups, language choice."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

import pytest
from flask import Flask, g, render_template_string

from mosplatform import i18n
from mosplatform.config import TestKindName

ROOT = Path(__file__).resolve().parents[1]
I18N_DIR = ROOT / "static" / "i18n"
TEMPLATES = [
    ROOT / "templates" / "base.html",
    *sorted((ROOT / "templates" / "participant").glob("*.html")),
]
SCRIPTS = sorted((ROOT / "static" / "js").rglob("*.js"))
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def catalogue(lang: str) -> dict[str, str]:
    return json.loads((I18N_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def test_catalogues_have_the_same_keys_and_placeholders():
    en, ja = catalogue("en"), catalogue("ja")
    assert set(en) == set(ja), sorted(set(en) ^ set(ja))
    for key in en:
        assert isinstance(en[key], str) and en[key].strip(), key
        assert isinstance(ja[key], str) and ja[key].strip(), key
        assert set(PLACEHOLDER.findall(en[key])) == set(PLACEHOLDER.findall(ja[key])), key


def test_templates_use_only_existing_keys():
    keys = set(catalogue("en"))
    assert TEMPLATES, "no participant templates found"
    used: dict[str, str] = {}
    for path in TEMPLATES:
        for key in re.findall(
            r"""\b_\(\s*["']([^"']+)["']\s*[,)]""", path.read_text(encoding="utf-8")
        ):
            used[key] = path.name
    assert used, "templates call _() for their text"
    missing = {k: f for k, f in used.items() if k not in keys}
    assert not missing, missing
    # Keys built at render time: "<kind>.instructions" and "headphone.<kind>_text".
    for kind in get_args(TestKindName):
        assert f"{kind}.instructions" in keys
    for kind in ("antiphase", "huggins"):
        assert f"headphone.{kind}_text" in keys


def test_page_scripts_use_only_existing_keys():
    keys = set(catalogue("en"))
    used = set()
    for path in SCRIPTS:
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", text))
        used |= set(re.findall(r"""push\(\s*["'](trial\.[a-z_]+)["']\)""", text))
    assert used
    assert used <= keys, sorted(used - keys)


def test_strings_falls_back_to_english(tmp_path, monkeypatch):
    (tmp_path / "en.json").write_text(json.dumps({"a": "A", "b": "B {n}"}), encoding="utf-8")
    (tmp_path / "ja.json").write_text(json.dumps({"a": "エー"}), encoding="utf-8")
    monkeypatch.setattr(i18n, "_folder", lambda: str(tmp_path))
    i18n._load.cache_clear()
    i18n._merged.cache_clear()
    try:
        assert i18n.strings("ja") == {"a": "エー", "b": "B {n}"}
        assert i18n.strings("xx") == {"a": "A", "b": "B {n}"}
        assert i18n.strings(None) == {"a": "A", "b": "B {n}"}
        assert i18n.translate("b", "ja", n=3) == "B 3"
        assert i18n.translate("nope", "ja") == "nope"
    finally:
        i18n._load.cache_clear()
        i18n._merged.cache_clear()


def test_jinja_global_uses_g_lang():
    app = Flask(__name__)
    i18n.init_app(app)
    with app.test_request_context():
        assert render_template_string("{{ _('welcome.title') }}") == "Welcome"
        g.lang = "ja"
        assert render_template_string("{{ _('welcome.title') }}") == "ようこそ"
        out = render_template_string("{{ _('trial.title', position=2, total=9) }}")
        assert out == "試行 2 / 9"
        assert render_template_string("{{ _('no.such.key') }}") == "no.such.key"
        g.lang = "fr"  # unsupported: English
        assert render_template_string("{{ _('welcome.title') }}") == "Welcome"
    with app.app_context():
        assert i18n.gettext("welcome.title") == "Welcome"


def test_strings_are_a_fresh_complete_dict():
    s = i18n.strings("ja")
    assert set(s) == set(catalogue("en"))
    s["welcome.title"] = "changed"
    assert i18n.strings("ja")["welcome.title"] == "ようこそ"


@pytest.mark.parametrize(
    ("supported", "requested", "header", "expected"),
    [
        (["en", "ja"], None, None, "en"),
        (["ja", "en"], None, None, "ja"),
        (["en", "ja"], "ja", "en-US,en;q=0.9", "ja"),
        (["en", "ja"], "JA-jp", None, "ja"),
        (["en"], "ja", "ja", "en"),
        (["en", "ja"], None, "ja-JP,ja;q=0.9,en;q=0.8", "ja"),
        (["en", "ja"], None, "fr-FR,fr;q=0.9,ja;q=0.5,en;q=0.4", "ja"),
        (["en", "ja"], None, "en;q=0.2,ja;q=0.8", "ja"),
        (["en", "ja"], None, "ja;q=0,en;q=0.1", "en"),
        (["ja", "en"], None, "fr, *;q=0.5", "ja"),
        (["en", "ja"], None, "de", "en"),
        (["en", "ja"], "xx", "garbage;;q=abc", "en"),
        (["de"], None, "de", "en"),
        ([], None, "ja", "en"),
    ],
)
def test_pick_language(supported, requested, header, expected):
    assert i18n.pick_language(supported, requested, header) == expected
