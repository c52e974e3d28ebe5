"""UI strings of the participant pages in English and Japanese.

The strings live in ``static/i18n/<lang>.json`` (one flat ``{key: text}`` map per
language) so that the page controllers in ``static/js`` and the Jinja templates
share them. Templates call ``_("key", name=value)``; the language is taken from
``flask.g.lang`` (set by the views), falling back to English and then to the
key itself. Test-specific labels (questions, scales) come from the test
definition, not from here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, has_app_context

DEFAULT_LANGUAGE = "en"
SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "ja")


@lru_cache(maxsize=16)
def _load(folder: str, lang: str) -> dict[str, str]:
    path = Path(folder) / f"{lang}.json"
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object of key -> text")
    return {str(k): str(v) for k, v in data.items()}


@lru_cache(maxsize=16)
def _find_folder(static_folder: str | None) -> str:
    here = Path(__file__).resolve().parent
    dirs = [Path(static_folder) / "i18n"] if static_folder else []
    dirs += [here / "_resources" / "static" / "i18n",  # installed wheel
             here.parent / "static" / "i18n"]  # source checkout
    for d in dirs:
        if (d / f"{DEFAULT_LANGUAGE}.json").is_file():
            return str(d)
    raise FileNotFoundError("static/i18n/en.json not found")


def _folder() -> str:
    """The folder of the string files: the app's static folder, else the package's."""
    return _find_folder(current_app.static_folder if has_app_context() else None)


@lru_cache(maxsize=32)
def _merged(folder: str, lang: str) -> dict[str, str]:
    """English overlaid with ``lang``; cached, so callers must not modify it."""
    merged = dict(_load(folder, DEFAULT_LANGUAGE))
    if lang != DEFAULT_LANGUAGE:
        merged.update(_load(folder, lang))
    return merged


def _supported(lang: str | None) -> str:
    return lang if lang and lang in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


def strings(lang: str | None) -> dict[str, str]:
    """Return every UI string for ``lang``, with English for keys it lacks.

    Parameters
    ----------
    lang : str or None
        Language code (``"en"``, ``"ja"``); unknown or ``None`` gives English.

    Returns
    -------
    dict of str to str
        A fresh dict that callers may pass to ``trial_config["strings"]``.
    """
    return dict(_merged(_folder(), _supported(lang)))


def current_language() -> str:
    """The language of the current request (``g.lang``), English outside a request."""
    lang = getattr(g, "lang", None) if has_app_context() else None
    return lang if lang in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


def gettext(key: str, **values: Any) -> str:
    """Look ``key`` up in the current language; ``{name}`` fields are filled from ``values``.

    Falls back to English, then to the key itself, so a missing string shows up
    as its key instead of breaking the page.
    """
    return translate(key, current_language(), **values)


def translate(key: str, lang: str | None, **values: Any) -> str:
    """Like :func:`gettext` but for an explicit language (outside templates)."""
    text = _merged(_folder(), _supported(lang)).get(key, key)
    if values:
        try:
            return text.format(**values)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def pick_language(supported: list[str], requested: str | None, accept_language: str | None) -> str:
    """Choose the page language.

    Parameters
    ----------
    supported : list of str
        Languages the test offers, in order of preference (the first is the default).
    requested : str or None
        An explicit choice (``?lang=ja`` or the participant's stored choice); wins when supported.
    accept_language : str or None
        The browser's ``Accept-Language`` header, e.g. ``"ja-JP,ja;q=0.9,en;q=0.8"``.

    Returns
    -------
    str
        One of ``supported`` that the platform ships strings for, else ``"en"``.

    Examples
    --------
    >>> pick_language(["en", "ja"], None, "ja-JP,ja;q=0.9,en;q=0.5")
    'ja'
    """
    usable = [s.lower() for s in supported if s and s.lower() in SUPPORTED_LANGUAGES]
    if not usable:
        return DEFAULT_LANGUAGE
    if requested and requested.lower().split("-")[0] in usable:
        return requested.lower().split("-")[0]
    ranked: list[tuple[float, int, str]] = []
    for pos, part in enumerate((accept_language or "").split(",")):
        bits = [b.strip() for b in part.split(";")]
        tag = bits[0].lower()
        if not tag:
            continue
        q = 1.0
        for b in bits[1:]:
            if b.startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        ranked.append((-q, pos, tag))
    for _, _, tag in sorted(ranked):
        base = tag.split("-")[0]
        if base in usable:
            return base
        if tag == "*":
            return usable[0]
    return usable[0]


def init_app(app: Flask) -> None:
    """Register ``_`` (gettext) and ``ui_strings`` as Jinja globals."""
    app.jinja_env.globals["_"] = gettext
    app.jinja_env.globals["ui_strings"] = lambda: strings(current_language())
    app.jinja_env.globals["current_language"] = current_language
