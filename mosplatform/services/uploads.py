"""Safe extraction of audio archives uploaded by admins.

An admin uploads a ``.zip``, ``.tar`` or compressed ``.tar`` (gzip, bzip2, xz) of
stimuli, for instance a MUSDB-style tree ``<track>/<source>.wav``. The archive is
untrusted: every member name is checked (no absolute paths, no ``..``, no links or
devices, no duplicates), only ``.wav``, ``.flac``, ``.yaml`` and ``.yml`` files
(plus directories) are accepted, and each file's content is sniffed while it is
written (``RIFF....WAVE``, ``fLaC``, UTF-8 text) so a renamed file is refused.
Extraction streams with running byte counts: the sizes an archive declares are never
trusted, so zip bombs stop at the first byte over a limit. Everything is written to a
hidden temporary folder that is renamed into place only when the whole archive passed;
any refusal removes it, leaving nothing on disk.

Nothing here knows about Flask; the admin view calls :func:`extract_audio_archive`.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import json
import lzma
import os
import re
import secrets
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import BinaryIO

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

DEFAULT_MAX_FILES = 5000
DEFAULT_MAX_TOTAL_BYTES = 8 * GiB
DEFAULT_MAX_FILE_BYTES = 2 * GiB
# Extracted bytes per archive byte. WAV/FLAC barely compress, but a silent stem does, so
# the ratio is taken over the whole archive, and only past RATIO_GRACE_BYTES.
DEFAULT_MAX_RATIO = 100.0
RATIO_GRACE_BYTES = 16 * MiB
MAX_YAML_BYTES = 1 * MiB
MAX_NAME_CHARS = 255
MAX_PATH_CHARS = 1024
MAX_DEPTH = 32
CHUNK = 256 * KiB
# Header bytes read between two members (tarfile's reads run ahead by ~10 KiB).
MAX_TAR_META_BYTES = 1 * MiB

AUDIO_SUFFIXES = (".wav", ".flac")
ALLOWED_SUFFIXES = (*AUDIO_SUFFIXES, ".yaml", ".yml")
# Operating-system litter that archivers add; skipped rather than refused.
IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
IGNORED_DIRS = {"__MACOSX"}


class UploadError(ValueError):
    """An archive (or one of its members) was refused; nothing was left on disk."""


@dataclass(frozen=True)
class UploadResult:
    """What :func:`extract_audio_archive` wrote.

    Attributes
    ----------
    folder : Path
        The new folder holding the extracted tree (``dest_root / name``).
    name : str
        Its random name.
    files : tuple of str
        Relative POSIX paths of the extracted files, sorted.
    total_bytes : int
        Bytes written.
    skipped : tuple of str
        Members skipped as operating-system litter (``__MACOSX/``, ``.DS_Store``).
    tracks : dict
        ``{collection: {track: [source, ...]}}`` as found by :func:`find_tracks`.
    """

    folder: Path
    name: str
    files: tuple[str, ...]
    total_bytes: int
    skipped: tuple[str, ...] = ()
    tracks: dict[str, dict[str, list[str]]] = field(default_factory=dict)


@dataclass
class _Limits:
    max_files: int
    max_total_bytes: int
    max_file_bytes: int
    max_ratio: float
    archive_bytes: int
    members: int = 0
    total: int = 0

    def count_member(self, name: str) -> None:
        self.members += 1
        if self.members > self.max_files:
            raise UploadError(f"{name}: the archive has more than {self.max_files} members")

    def add(self, name: str, n: int, file_total: int) -> None:
        self.total += n
        if file_total > self.max_file_bytes:
            raise UploadError(f"{name}: file larger than {self.max_file_bytes} bytes")
        if self.total > self.max_total_bytes:
            raise UploadError(f"{name}: the archive expands to more than "
                              f"{self.max_total_bytes} bytes")
        if self.total > RATIO_GRACE_BYTES and self.total > self.max_ratio * self.archive_bytes:
            raise UploadError(f"{name}: suspicious compression ratio (over {self.max_ratio:g}:1; "
                              "a zip bomb?)")


class _CountingReader(io.RawIOBase):
    """Reads a (decompressed) tar stream, bounding what it delivers.

    At most ``limit`` bytes in all, and at most ``MAX_TAR_META_BYTES`` between two
    members' data (headers, PAX records, long names), which ``tarfile`` holds in memory.
    """

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self.raw = raw
        self.limit = limit
        self.count = 0
        self.meta = 0
        self.in_data = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        data = self.raw.read(min(len(b), CHUNK))
        self.count += len(data)
        if self.count > self.limit:
            raise UploadError(f"the archive expands to more than {self.limit} bytes")
        if not self.in_data:
            self.meta += len(data)
            if self.meta > MAX_TAR_META_BYTES:
                raise UploadError("a tar header (PAX record or long name) is larger than "
                                  f"{MAX_TAR_META_BYTES} bytes")
        b[:len(data)] = data
        return len(data)


def _safe_parts(name: str) -> tuple[str, ...]:
    """The checked path components of a member name (raises UploadError)."""
    shown = name if len(name) <= 200 else name[:200] + "..."
    if not name or "\x00" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UploadError(f"{shown!r}: empty name or control characters in the name")
    if "\\" in name:
        raise UploadError(f"{shown}: backslash in the name (Windows paths are refused)")
    if name.startswith("/"):
        raise UploadError(f"{shown}: absolute path")
    if len(name) > MAX_PATH_CHARS:
        raise UploadError(f"{shown}: path longer than {MAX_PATH_CHARS} characters")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if not parts:
        raise UploadError(f"{shown!r}: empty path")
    if ":" in parts[0]:
        raise UploadError(f"{shown}: drive letter or scheme in the path")
    for part in parts:
        if part == "..":
            raise UploadError(f"{shown}: '..' in the path (path traversal)")
        if len(part) > MAX_NAME_CHARS:
            raise UploadError(f"{shown}: a path component is over {MAX_NAME_CHARS} characters")
    if len(parts) > MAX_DEPTH:
        raise UploadError(f"{shown}: nested deeper than {MAX_DEPTH} folders")
    return parts


def _is_ignored(parts: tuple[str, ...]) -> bool:
    return parts[0] in IGNORED_DIRS or parts[-1] in IGNORED_NAMES


class _Sniffer:
    """Checks a member's content against its extension while it streams."""

    def __init__(self, name: str, suffix: str) -> None:
        self.name = name
        self.suffix = suffix
        self.head = b""
        self.decoder = codecs.getincrementaldecoder("utf-8")() if suffix in (".yaml",
                                                                              ".yml") else None

    def feed(self, data: bytes) -> None:
        if len(self.head) < 12:
            self.head += data[:12 - len(self.head)]
        if self.decoder is not None:
            if b"\x00" in data:
                raise UploadError(f"{self.name}: not a text (YAML) file")
            try:
                self.decoder.decode(data)
            except UnicodeDecodeError:
                raise UploadError(f"{self.name}: not UTF-8 text") from None
        elif len(self.head) >= 12:
            self._check_magic()

    def _check_magic(self) -> None:
        if self.suffix == ".wav":
            if not (self.head[:4] == b"RIFF" and self.head[8:12] == b"WAVE"):
                raise UploadError(f"{self.name}: not a WAV file (no RIFF....WAVE header)")
        elif self.suffix == ".flac" and self.head[:4] != b"fLaC":
            raise UploadError(f"{self.name}: not a FLAC file (no fLaC header)")

    def finish(self, size: int) -> None:
        if self.decoder is not None:
            try:
                self.decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise UploadError(f"{self.name}: not UTF-8 text") from None
            if size > MAX_YAML_BYTES:
                raise UploadError(f"{self.name}: YAML file larger than {MAX_YAML_BYTES} bytes")
        else:
            if len(self.head) < 12:
                raise UploadError(f"{self.name}: too short to be a "
                                  f"{self.suffix[1:].upper()} file")
            self._check_magic()


class _Writer:
    """Creates folders and files under the temporary root, refusing clashes."""

    def __init__(self, root: Path, limits: _Limits) -> None:
        self.root = root
        self.limits = limits
        self.files: dict[str, str] = {}  # casefolded path -> path
        self.dirs: dict[str, str] = {}
        self.written: list[str] = []
        self.skipped: list[str] = []

    def _claim(self, parts: tuple[str, ...], is_dir: bool, name: str) -> str:
        rel = "/".join(parts)
        key = rel.casefold()
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i]).casefold()
            if parent in self.files:
                raise UploadError(f"{name}: a parent folder is also a file in the archive")
            self.dirs.setdefault(parent, parent)
        if key in self.files or (not is_dir and key in self.dirs):
            raise UploadError(f"{name}: duplicate name in the archive")
        if is_dir:
            self.dirs[key] = rel
        else:
            self.files[key] = rel
        return rel

    def directory(self, name: str) -> None:
        parts = _safe_parts(name)
        if _is_ignored(parts):
            return
        rel = self._claim(parts, True, name)
        (self.root / rel).mkdir(parents=True, exist_ok=True)

    def file(self, name: str, chunks: Iterator[bytes]) -> None:
        parts = _safe_parts(name)
        if _is_ignored(parts):
            self.skipped.append("/".join(parts))
            return
        suffix = PurePosixPath(parts[-1]).suffix.lower()
        if suffix not in ALLOWED_SUFFIXES:
            raise UploadError(f"{name}: file type not allowed (only "
                              f"{', '.join(ALLOWED_SUFFIXES)} and folders)")
        rel = self._claim(parts, False, name)
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        sniffer = _Sniffer(name, suffix)
        size = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(target, flags, 0o644)
        with os.fdopen(fd, "wb") as out:
            for data in chunks:
                if not data:
                    continue
                size += len(data)
                self.limits.add(name, len(data), size)
                sniffer.feed(data)
                out.write(data)
        sniffer.finish(size)
        self.written.append(rel)


def _read_chunks(fh: BinaryIO) -> Iterator[bytes]:
    while True:
        data = fh.read(CHUNK)
        if not data:
            return
        yield data


def _extract_zip(fileobj: BinaryIO, writer: _Writer, limits: _Limits) -> None:
    try:
        zf = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise UploadError(f"not a readable zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_files:
            raise UploadError(f"the archive has {len(infos)} members, more than "
                              f"{limits.max_files}")
        for info in infos:
            name = info.filename
            limits.count_member(name)
            mode = (info.external_attr >> 16) & 0xFFFF
            if info.flag_bits & 0x1:
                raise UploadError(f"{name}: encrypted members are refused")
            kind = stat.S_IFMT(mode)
            if info.is_dir():
                if kind not in (0, stat.S_IFDIR):
                    raise UploadError(f"{name}: not a plain folder")
                writer.directory(name)
                continue
            if kind == stat.S_IFLNK:
                raise UploadError(f"{name}: symbolic links are refused")
            if kind not in (0, stat.S_IFREG):
                raise UploadError(f"{name}: not a regular file (device, pipe or socket)")
            if info.file_size > limits.max_file_bytes:  # early refusal; still counted below
                raise UploadError(f"{name}: file larger than {limits.max_file_bytes} bytes")
            try:
                with zf.open(info) as fh:
                    writer.file(name, _read_chunks(fh))
            except (zipfile.BadZipFile, NotImplementedError, EOFError, OSError,
                    zlib.error) as exc:
                raise UploadError(f"{name}: cannot be read ({exc})") from None


def _open_tar_stream(fileobj: BinaryIO, limit: int) -> _CountingReader:
    """The decompressed tar stream of ``fileobj``, bounded to ``limit`` bytes."""
    head = fileobj.read(6)
    fileobj.seek(0)
    stream: BinaryIO
    if head[:2] == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=fileobj, mode="rb")  # type: ignore[assignment]
    elif head[:3] == b"BZh":
        stream = bz2.BZ2File(fileobj, mode="rb")  # type: ignore[assignment]
    elif head == b"\xfd7zXZ\x00":
        stream = lzma.LZMAFile(fileobj, mode="rb")  # type: ignore[assignment]
    else:
        block = fileobj.read(512)
        fileobj.seek(0)
        if len(block) < 512 or block[257:262] != b"ustar":
            raise UploadError("not a zip or tar archive (.zip, .tar, .tar.gz, .tar.bz2, "
                              ".tar.xz)")
        stream = fileobj
    # Unbuffered: tarfile reads in 10 KiB blocks, so header and data reads stay apart.
    return _CountingReader(stream, limit)


def _extract_tar(fileobj: BinaryIO, writer: _Writer, limits: _Limits) -> None:
    # Headers and padding count too: a bound on the whole decompressed stream.
    bound = limits.max_total_bytes + 3 * 512 * (limits.max_files + 2) + 20 * 512
    try:
        stream = _open_tar_stream(fileobj, bound)
        tf = tarfile.open(fileobj=stream, mode="r|")  # type: ignore[call-overload]
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as exc:
        raise UploadError(f"not a readable tar archive ({exc})") from None
    try:
        with tf:
            for member in tf:
                stream.meta = 0  # this member's headers were within the bound
                name = member.name
                limits.count_member(name)
                if member.issym() or member.islnk():
                    raise UploadError(f"{name}: links are refused (symbolic or hard)")
                if member.isdir():
                    writer.directory(name)
                    continue
                if not member.isfile():
                    raise UploadError(f"{name}: not a regular file (device, pipe or socket)")
                if member.size > limits.max_file_bytes:
                    raise UploadError(f"{name}: file larger than {limits.max_file_bytes} "
                                      "bytes")
                fh = tf.extractfile(member)
                if fh is None:  # pragma: no cover - isfile() members always have data
                    raise UploadError(f"{name}: cannot be read")
                stream.in_data = True
                writer.file(name, _read_chunks(fh))  # type: ignore[arg-type]
                stream.in_data = False
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise UploadError(f"the tar archive is corrupt ({exc})") from None


def _new_name() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(6)}"


def extract_audio_archive(fileobj: BinaryIO, dest_root: str | os.PathLike[str], *,
                          max_files: int = DEFAULT_MAX_FILES,
                          max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
                          max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                          max_ratio: float = DEFAULT_MAX_RATIO) -> UploadResult:
    """Check and extract an archive of audio files into a new folder under ``dest_root``.

    Parameters
    ----------
    fileobj : binary file
        The archive, seekable (a ``.zip``; a ``.tar``, optionally gzip, bzip2 or xz
        compressed). Its kind is sniffed from the content, not a file name.
    dest_root : path
        Folder that receives the new ``<random>`` folder; created if missing.
    max_files : int
        Most members (files and folders) the archive may have.
    max_total_bytes : int
        Most bytes all files may expand to, counted while extracting.
    max_file_bytes : int
        Most bytes one file may expand to.
    max_ratio : float
        Most extracted bytes per archive byte (checked once over 16 MiB are written).

    Returns
    -------
    UploadResult

    Raises
    ------
    UploadError
        Naming the member and the reason; the temporary folder is removed first.
    """
    root = Path(dest_root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        fileobj.seek(0, os.SEEK_END)
        archive_bytes = fileobj.tell()
        fileobj.seek(0)
    except (OSError, AttributeError) as exc:
        raise UploadError(f"the upload cannot be read ({exc})") from None
    if archive_bytes == 0:
        raise UploadError("the upload is empty")
    limits = _Limits(max_files=max_files, max_total_bytes=max_total_bytes,
                     max_file_bytes=max_file_bytes, max_ratio=max_ratio,
                     archive_bytes=archive_bytes)
    name = _new_name()
    tmp = root / f".partial-{name}"
    tmp.mkdir()
    try:
        writer = _Writer(tmp, limits)
        if zipfile.is_zipfile(fileobj):
            fileobj.seek(0)
            _extract_zip(fileobj, writer, limits)
        else:
            fileobj.seek(0)
            _extract_tar(fileobj, writer, limits)
        if not writer.written:
            raise UploadError("the archive holds no .wav, .flac or .yaml file")
        final = root / name
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return UploadResult(folder=final, name=name, files=tuple(sorted(writer.written)),
                        total_bytes=limits.total, skipped=tuple(writer.skipped),
                        tracks=find_tracks(final))


def find_tracks(folder: str | os.PathLike[str]) -> dict[str, dict[str, list[str]]]:
    """MUSDB-style track folders under ``folder``: ``{collection: {track: [source, ...]}}``.

    A track is a folder that directly holds ``.wav`` or ``.flac`` files (its sources,
    by file stem); its collection is the parent folder relative to ``folder`` (``"."``
    for the top), the path to give as ``reference:`` or a condition's ``folder:``.

    Parameters
    ----------
    folder : path

    Returns
    -------
    dict
        Sorted by collection and track.
    """
    base = Path(folder)
    found: dict[str, dict[str, list[str]]] = {}
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames.sort()
        sources = sorted(PurePosixPath(f).stem for f in filenames
                         if PurePosixPath(f).suffix.lower() in AUDIO_SUFFIXES)
        here = Path(dirpath)
        if not sources or here == base:
            continue
        collection = here.parent.relative_to(base).as_posix()
        found.setdefault(collection, {})[here.name] = sources
    return {c: dict(sorted(t.items())) for c, t in sorted(found.items())}


@dataclass(frozen=True)
class UploadSummary:
    """One finished upload folder, for listing."""

    name: str
    folder: Path
    created: datetime
    n_files: int
    tracks: dict[str, dict[str, list[str]]]


def list_uploads(user_root: str | os.PathLike[str]) -> list[UploadSummary]:
    """Finished uploads under ``user_root`` (one admin's folder), newest first.

    Parameters
    ----------
    user_root : path

    Returns
    -------
    list of UploadSummary
    """
    root = Path(user_root)
    if not root.is_dir():
        return []
    out = []
    for entry in root.iterdir():
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
            continue
        n_files = sum(1 for p in entry.rglob("*") if p.is_file())
        created = datetime.fromtimestamp(entry.stat().st_mtime, tz=timezone.utc)
        out.append(UploadSummary(name=entry.name, folder=entry, created=created,
                                 n_files=n_files, tracks=find_tracks(entry)))
    out.sort(key=lambda s: (s.created, s.name), reverse=True)
    return out


def definition_snippet(folder: str | os.PathLike[str],
                       tracks: dict[str, dict[str, list[str]]]) -> str:
    """YAML lines pointing a definition at an upload's track folders.

    The first collection (one named ``reference`` if any) becomes ``stimuli.reference``;
    the others are listed as candidate condition folders.

    Parameters
    ----------
    folder : path
        The upload folder (absolute).
    tracks : dict
        As returned by :func:`find_tracks`.

    Returns
    -------
    str
    """
    base = Path(folder)

    def path_of(collection: str) -> str:
        # JSON strings are valid double-quoted YAML scalars.
        return json.dumps(str(base if collection == "." else base / collection))

    if not tracks:
        return f"# no track folders (<track>/<source>.wav) found in {path_of('.')}\n"
    names = sorted(tracks, key=lambda c: (PurePosixPath(c).name != "reference", c))
    first = names[0]
    track_list = ", ".join(json.dumps(t) for t in tracks[first])
    lines = ["stimuli:", "  type: folders", f"  reference: {path_of(first)}",
             f"  tracks: [{track_list}]"]
    if len(names) > 1:
        lines += ["conditions:"]
        for c in names[1:]:
            key = re.sub(r"[^A-Za-z0-9_\-.]", "_", PurePosixPath(c).name)[:128] or "upload"
            lines.append(f"  - {{key: {json.dumps(key)}, folder: {path_of(c)}}}")
    return "\n".join(lines) + "\n"
