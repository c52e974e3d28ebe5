"""Audio archive uploads: the extraction service (path traversal, links, zip bombs,
content sniffing, limits, clean refusal) and the ``/admin/uploads`` page (login, CSRF,
per-admin folders, the body-size limit of that route only)."""

from __future__ import annotations

import io
import stat
import tarfile
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from adminfixtures import PASSWORD, add_admin, csrf_from, login, seed_world

from mosplatform.services.uploads import (
    UploadError,
    definition_snippet,
    extract_audio_archive,
    find_tracks,
    list_uploads,
)

SOURCES = ("bass", "drums", "mixture", "other", "vocals")


# --------------------------------------------------------------------------------------
# Archive builders (small, in memory)
# --------------------------------------------------------------------------------------


def wav_bytes(seed: int = 0, n: int = 800, sr: int = 8000) -> bytes:
    """A short 16-bit mono WAV written with the standard library's ``wave``."""
    rng = np.random.default_rng(seed)
    pcm = (rng.standard_normal(n) * 3000).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def flac_bytes(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    sf.write(buf, (0.1 * rng.standard_normal(800)).astype(np.float32), 8000, format="FLAC")
    return buf.getvalue()


def make_zip(members: list[tuple[str, bytes | None]], *, compression: int = zipfile.ZIP_DEFLATED
             ) -> io.BytesIO:
    """A zip of ``(name, data)``; ``data`` None makes a folder entry."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            if data is None:
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                zf.writestr(info, data)
    buf.seek(0)
    return buf


def make_tar(members: list[tarfile.TarInfo | tuple[str, bytes | None]], mode: str = "w:gz"
             ) -> io.BytesIO:
    """A tar of ``(name, data)`` (None: folder) or ready-made TarInfo (links, devices)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
                continue
            name, data = m
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def musdb_members(prefix: str = "musdb/train/", tracks: tuple[str, ...] = ("Track A", "TrackB")
                  ) -> list[tuple[str, bytes | None]]:
    members: list[tuple[str, bytes | None]] = [(prefix, None)]
    for t, track in enumerate(tracks):
        members.append((f"{prefix}{track}/", None))
        for s, source in enumerate(SOURCES):
            members.append((f"{prefix}{track}/{source}.wav", wav_bytes(10 * t + s)))
    members.append(("musdb/test.yaml", "name: Ünïcode test\nkind: acr\n".encode()))
    return members


def refused(archive: io.BytesIO, dest: Path, match: str, **limits: object) -> str:
    """Assert the archive is refused with ``match`` in the message and nothing is left."""
    with pytest.raises(UploadError, match=match) as info:
        extract_audio_archive(archive, dest, **limits)  # type: ignore[arg-type]
    assert list(dest.iterdir()) == [], "a refusal left files behind"
    return str(info.value)


# --------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar"])
def test_musdb_archive_extracts_and_lists_tracks(tmp_path, kind):
    members = musdb_members()
    archive = (make_zip(members) if kind == "zip"
               else make_tar(members, "w:gz" if kind == "tar.gz" else "w"))
    dest = tmp_path / "uploads"
    result = extract_audio_archive(archive, dest)
    assert [p.name for p in dest.iterdir()] == [result.name]  # no temporary folder left
    assert result.folder == dest / result.name
    expected_files = {name for name, data in members if data is not None}
    assert set(result.files) == expected_files
    for name, data in members:
        if data is not None:
            assert (result.folder / name).read_bytes() == data
    # The audio decodes to what went in (read with soundfile, written with wave).
    x, sr = sf.read(result.folder / "musdb/train/TrackB/vocals.wav", dtype="int16")
    ref = (np.random.default_rng(14).standard_normal(800) * 3000).astype("<i2")
    assert sr == 8000 and np.array_equal(x, ref)
    assert result.tracks == {"musdb/train": {"Track A": sorted(SOURCES),
                                             "TrackB": sorted(SOURCES)}}
    assert result.total_bytes == sum(len(d) for _, d in members if d is not None)


def test_flac_and_top_level_tracks(tmp_path):
    archive = make_zip([("song/vocals.flac", flac_bytes(1)), ("song/mixture.flac", flac_bytes(2)),
                        ("defs/acr.yml", b"kind: acr\n")])
    result = extract_audio_archive(archive, tmp_path)
    assert result.tracks == {".": {"song": ["mixture", "vocals"]}}


def test_two_random_folders_never_clash(tmp_path):
    a = extract_audio_archive(make_zip([("t/x.wav", wav_bytes())]), tmp_path)
    b = extract_audio_archive(make_zip([("t/x.wav", wav_bytes())]), tmp_path)
    assert a.name != b.name and len(a.name.rsplit("-", 1)[1]) == 12
    assert [u.name for u in list_uploads(tmp_path)] and {u.name for u in list_uploads(tmp_path)
                                                         } == {a.name, b.name}


def test_macos_litter_is_skipped(tmp_path):
    archive = make_zip([("t/x.wav", wav_bytes()), ("__MACOSX/t/._x.wav", b"\x00\x05junk"),
                        ("t/.DS_Store", b"\x00\x00\x00\x01Bud1")])
    result = extract_audio_archive(archive, tmp_path)
    assert result.files == ("t/x.wav",)
    assert set(result.skipped) == {"__MACOSX/t/._x.wav", "t/.DS_Store"}
    assert not (result.folder / "__MACOSX").exists()


@pytest.mark.parametrize("name,reason", [
    ("../evil.wav", "'..'"),
    ("track/../../evil.wav", "'..'"),
    ("/tmp/evil.wav", "absolute path"),
    ("..\\evil.wav", "backslash"),
    ("C:/evil.wav", "drive letter"),
    ("track/evil\x01.wav", "control characters"),
])
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_path_traversal_is_refused(tmp_path, kind, name, reason):
    members = [("track/ok.wav", wav_bytes()), (name, wav_bytes(1))]
    archive = make_zip(members) if kind == "zip" else make_tar(members)
    dest = tmp_path / "root" / "uploads"
    dest.mkdir(parents=True)
    message = refused(archive, dest, reason)
    assert "evil" in message  # names the member
    assert not list(tmp_path.rglob("evil*"))  # written nowhere, inside or outside


def _tar_special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize("special,reason", [
    (_tar_special("track/link.wav", tarfile.SYMTYPE, "/etc/passwd"), "links are refused"),
    (_tar_special("track/up", tarfile.SYMTYPE, "../.."), "links are refused"),
    (_tar_special("track/hard.wav", tarfile.LNKTYPE, "track/ok.wav"), "links are refused"),
    (_tar_special("track/null.wav", tarfile.CHRTYPE), "not a regular file"),
    (_tar_special("track/fifo.wav", tarfile.FIFOTYPE), "not a regular file"),
])
def test_tar_links_and_devices_are_refused(tmp_path, special, reason):
    archive = make_tar([("track/ok.wav", wav_bytes()), special])
    message = refused(archive, tmp_path, reason)
    assert special.name in message


def test_zip_symlink_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("track/link.wav")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    buf.seek(0)
    refused(buf, tmp_path, "track/link.wav: symbolic links")


def test_zip_bomb_over_total_limit_stops_while_streaming(tmp_path):
    # Two members, each under the per-file limit: only the running total catches them.
    big = b"RIFF\x00\x00\x00\x00WAVE" + bytes(3 * 1024 * 1024)
    archive = make_zip([("a/x.wav", big), ("a/y.wav", big)])
    assert len(archive.getvalue()) < 40_000  # highly compressible
    message = refused(archive, tmp_path, "expands to more than", max_total_bytes=4 * 1024 * 1024,
                      max_file_bytes=5 * 1024 * 1024)
    assert "a/y.wav" in message


def test_zip_bomb_caught_by_compression_ratio(tmp_path):
    big = b"RIFF\x00\x00\x00\x00WAVE" + bytes(24 * 1024 * 1024)
    archive = make_zip([("bomb/x.wav", big)])
    refused(archive, tmp_path, "bomb/x.wav: suspicious compression ratio")


def test_big_file_over_per_file_limit(tmp_path):
    big = b"RIFF\x00\x00\x00\x00WAVE" + bytes(300_000)
    refused(make_zip([("a/x.wav", big)]), tmp_path, "a/x.wav: file larger than",
            max_file_bytes=100_000)
    refused(make_tar([("a/x.wav", big)]), tmp_path, "a/x.wav: file larger than",
            max_file_bytes=100_000)


def test_tar_gz_bomb_over_total_limit(tmp_path):
    big = b"RIFF\x00\x00\x00\x00WAVE" + bytes(2 * 1024 * 1024)
    archive = make_tar([(f"a/{i}.wav", big) for i in range(3)])
    refused(archive, tmp_path, "expands to more than", max_total_bytes=5 * 1024 * 1024)


def test_huge_tar_header_is_refused(tmp_path):
    """A PAX record of 2 MiB (tarfile would hold it in memory) is refused while read."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        data = wav_bytes()
        info = tarfile.TarInfo("t/x.wav")
        info.size = len(data)
        info.pax_headers = {"comment": "x" * (2 * 1024 * 1024)}
        tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    refused(buf, tmp_path, "tar header")


def test_many_small_tar_members_within_header_bound(tmp_path):
    members: list[tuple[str, bytes | None]] = [(f"d{i}/", None) for i in range(300)]
    members += [(f"d{i}/{s}.wav", wav_bytes(i, n=40)) for i in range(300) for s in ("a", "b")]
    result = extract_audio_archive(make_tar(members), tmp_path)
    assert len(result.files) == 600 and len(result.tracks["."]) == 300


@pytest.mark.parametrize("name,data,reason", [
    ("t/vocals.wav", b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(100), "not a WAV file"),
    ("t/vocals.wav", b"RIFF\x24\x00\x00\x00AVI LIST" + bytes(100), "not a WAV file"),
    ("t/vocals.flac", None, "not a FLAC file"),  # a WAV renamed to .flac
    ("t/tiny.wav", b"RIFF", "too short"),
    ("defs/test.yaml", b"name: \xff\xfe bad\n", "not UTF-8 text"),
    ("defs/test.yml", b"name: x\x00\n", "not a text"),
])
def test_wrong_magic_bytes_are_refused(tmp_path, name, data, reason):
    archive = make_zip([("t/ok.wav", wav_bytes()), (name, wav_bytes() if data is None else data)])
    assert name in refused(archive, tmp_path, reason)


@pytest.mark.parametrize("name", ["t/notes.txt", "t/run.sh", "t/song.mp3", "t/README",
                                  "t/x.wav.exe"])
def test_disallowed_extension_is_refused(tmp_path, name):
    archive = make_tar([("t/ok.wav", wav_bytes()), (name, b"RIFF\x00\x00\x00\x00WAVE")])
    assert name in refused(archive, tmp_path, "file type not allowed")


def test_too_many_files(tmp_path):
    members = [(f"t/{i}.wav", wav_bytes(i)) for i in range(4)]
    refused(make_zip(members), tmp_path, "more than 3", max_files=3)
    refused(make_tar(members), tmp_path, "more than 3", max_files=3)
    assert extract_audio_archive(make_zip(members), tmp_path, max_files=4).files


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("names,reason", [
    (["t/x.wav", "t/x.wav"], "duplicate name"),
    (["t/x.wav", "T/X.WAV"], "duplicate name"),  # clashes on case-insensitive disks
    (["t/x.wav", "t/./x.wav"], "duplicate name"),
    (["t.wav", "t.wav/x.wav"], "also a file"),
])
def test_duplicate_names_are_refused(tmp_path, names, reason):
    archive = make_zip([(n, wav_bytes(i)) for i, n in enumerate(names)])
    refused(archive, tmp_path, reason)


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"this is not an archive at all" * 40, "not a zip or tar"),
    (b"PK\x03\x04" + bytes(600), "not a zip or tar"),
])
def test_not_an_archive(tmp_path, data, reason):
    refused(io.BytesIO(data), tmp_path, reason)


def test_archive_without_audio_is_refused(tmp_path):
    refused(make_zip([("a/", None), ("a/b/", None)]), tmp_path, "holds no")


def test_corrupt_member_is_refused_and_cleaned(tmp_path):
    archive = make_zip([("t/ok.wav", wav_bytes()), ("t/bad.wav", wav_bytes(3))])
    raw = bytearray(archive.getvalue())
    start = raw.find(b"t/bad.wav") + len("t/bad.wav") + 10  # inside its deflate data
    raw[start:start + 20] = bytes(20)
    assert "t/bad.wav" in refused(io.BytesIO(bytes(raw)), tmp_path, "t/bad.wav")


def test_snippet_points_at_the_track_folders(tmp_path):
    members = musdb_members("ref/") + [("sysA/", None)]
    members += [(f"sysA/TrackB/{s}.wav", wav_bytes(99)) for s in ("vocals", "drums")]
    result = extract_audio_archive(make_zip(members), tmp_path)
    snippet = yaml.safe_load(definition_snippet(result.folder, result.tracks))
    assert snippet["stimuli"]["type"] == "folders"
    ref = Path(snippet["stimuli"]["reference"])
    assert ref == result.folder / "ref" and (ref / "Track A" / "vocals.wav").is_file()
    assert snippet["stimuli"]["tracks"] == ["Track A", "TrackB"]
    assert snippet["conditions"] == [{"key": "sysA", "folder": str(result.folder / "sysA")}]
    assert find_tracks(result.folder)["sysA"] == {"TrackB": ["drums", "vocals"]}


# --------------------------------------------------------------------------------------
# The admin page
# --------------------------------------------------------------------------------------


@pytest.fixture
def db_url(tmp_path) -> str:
    """SQLite only: the page stores nothing in the database."""
    return "sqlite:///" + str(tmp_path / "uploads.sqlite")


def _post(client, archive: io.BytesIO, filename: str = "stems.zip", **extra: str):  # type: ignore[no-untyped-def]
    data: dict[str, object] = {"archive": (archive, filename), **extra}
    return client.post("/admin/uploads", data=data, content_type="multipart/form-data")


def _user_root(app, user_id: int) -> Path:  # type: ignore[no-untyped-def]
    return Path(app.instance_path) / "uploads" / str(user_id)


def _stored(app) -> list[Path]:  # type: ignore[no-untyped-def]
    root = Path(app.instance_path) / "uploads"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_admin_uploads_archive_and_sees_tracks(app, client, admin):
    resp = _post(client, make_zip(musdb_members()))
    assert resp.status_code == 302, resp.data[:500]
    assert resp.location.startswith("/admin/uploads?folder=")
    name = resp.location.split("folder=", 1)[1]
    folder = _user_root(app, admin.id) / name
    assert (folder / "musdb/train/TrackB/vocals.wav").is_file()
    page = client.get(resp.location)
    html = page.data.decode()
    assert page.status_code == 200
    assert "Track A" in html and "TrackB" in html and name in html
    snippet = html.split('<pre class="code snippet">', 1)[1].split("</pre>", 1)[0]
    import html as html_lib

    parsed = yaml.safe_load(html_lib.unescape(snippet))
    assert Path(parsed["stimuli"]["reference"]) == (folder / "musdb/train").resolve()
    # Listed among previous uploads, and linked from the tests list.
    assert f"?folder={name}" in client.get("/admin/uploads").data.decode()
    assert 'href="/admin/uploads"' in client.get("/admin/").data.decode()


def test_refused_upload_shows_reason_and_leaves_nothing(app, client, admin):
    resp = _post(client, make_zip([("t/ok.wav", wav_bytes()), ("../../evil.wav", wav_bytes())]))
    assert resp.status_code == 422
    html = resp.data.decode()
    assert "evil.wav" in html and "path traversal" in html
    assert _stored(app) == []
    assert not list(Path(app.instance_path).parent.rglob("evil.wav"))


def test_missing_file_is_400(app, client, admin):
    resp = client.post("/admin/uploads", data={}, content_type="multipart/form-data")
    assert resp.status_code == 400 and b"choose an archive" in resp.data


def test_admins_do_not_see_each_others_uploads(app):
    from mosplatform.extensions import db

    add_admin("ann")
    add_admin("bob")
    db.session.commit()
    ann, bob = app.test_client(), app.test_client()
    login(ann, "ann")
    login(bob, "bob")
    name = _post(ann, make_zip(musdb_members())).location.split("folder=", 1)[1]
    assert name not in bob.get("/admin/uploads").data.decode()
    assert bob.get(f"/admin/uploads?folder={name}").status_code == 404
    assert ann.get(f"/admin/uploads?folder={name}").status_code == 200
    assert ann.get("/admin/uploads?folder=../1").status_code == 404


def test_anonymous_and_participants_cannot_upload(app):
    world = seed_world()
    anonymous = app.test_client()
    participant = app.test_client()
    resp = participant.get(f"/t/{world.public_id}")
    assert resp.status_code == 302 and resp.location.startswith("/p/")
    for client in (anonymous, participant):
        assert client.get("/admin/uploads").location.startswith("/admin/login")
        resp = _post(client, make_zip(musdb_members()))
        assert resp.status_code == 302 and resp.location.startswith("/admin/login")
    assert _stored(app) == []


def test_csrf_enforced_on_upload(app_with):
    app = app_with(WTF_CSRF_ENABLED=True)
    seed_world()
    client = app.test_client()
    token = csrf_from(client.get("/admin/login").data)
    resp = client.post("/admin/login", data={"username": "owner", "password": PASSWORD,
                                             "csrf_token": token})
    assert resp.status_code == 302
    assert _post(client, make_zip(musdb_members())).status_code == 400
    assert _post(client, make_zip(musdb_members()), csrf_token="forged").status_code == 400
    assert _stored(app) == []
    html = client.get("/admin/uploads").data.decode()
    assert html.count('name="csrf_token"') >= html.count('method="post"') > 0
    token = csrf_from(html.split('action="/admin/uploads"', 1)[1])
    assert _post(client, make_zip(musdb_members()), csrf_token=token).status_code == 302
    assert _stored(app)


def test_upload_limit_applies_to_this_route_only(app_with):
    # The archive is larger than MAX_CONTENT_LENGTH but under UPLOAD_MAX_BYTES.
    app = app_with(MAX_CONTENT_LENGTH=10_000, UPLOAD_MAX_BYTES=200_000)
    seed_world()
    client = app.test_client()
    login(client, "owner")
    archive = make_zip(musdb_members(), compression=zipfile.ZIP_STORED)
    assert 10_000 < len(archive.getvalue()) < 200_000
    assert _post(client, archive).status_code == 302
    # Other routes keep the app-wide limit.
    resp = client.post("/admin/tests/new", data={"definition_text": "x" * 30_000})
    assert resp.status_code == 413
    # Over UPLOAD_MAX_BYTES: refused before anything is read.
    big = make_zip([(f"t/{i}.wav", wav_bytes(i, n=20_000)) for i in range(6)],
                   compression=zipfile.ZIP_STORED)
    assert len(big.getvalue()) > 200_000
    before = _stored(app)
    assert _post(client, big).status_code == 413
    assert _stored(app) == before
