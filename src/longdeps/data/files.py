"""Finding data files, checking them, and downloading them.

The data root is, in order: the explicit ``data_dir`` (``--data-dir``), the
``LONGDEPS_DATA`` environment variable, ``~/.cache/longdeps``. Every file is
checked against its recorded size and sha256 before it is read (once per
process), so a corrupted or truncated copy is refused with both digests. A
download goes to a temporary file beside its place, renamed there only once
its sha256 is right; a failed one (no network, a time-out, an HTTP error, a
wrong sha256) leaves nothing and says how to get the files by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, IO

from longdeps.data.registry import DATASETS, DataFile, Dataset
from longdeps.errors import LongdepsError

_verified: set[tuple[str, int, int]] = set()

TIMEOUT = 30  #: seconds a download waits for the server, to connect or for each read


def data_root(data_dir: str | Path | None = None) -> Path:
    """Where data sets live: ``data_dir``, else ``$LONGDEPS_DATA``, else ``~/.cache/longdeps``."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("LONGDEPS_DATA"):
        return Path(os.environ["LONGDEPS_DATA"]).expanduser()
    return Path.home() / ".cache" / "longdeps"


def dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise LongdepsError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def verify(file: DataFile, path: Path) -> None:
    """Raise a one-line error unless ``path`` has ``file``'s sha256 (checked once per process)."""
    if _key(path) in _verified:
        return
    actual = sha256_of(path)
    if actual != file.sha256:
        raise LongdepsError(f"{path}: sha256 is {actual}, expected {file.sha256} ({path.stat().st_size} bytes, "
                            f"expected {file.size}); the file is corrupted or truncated: delete it and get it again")
    _verified.add(_key(path))


def locate(name: str, data_dir: str | Path | None = None) -> dict[str, Path]:
    """The checked files of data set ``name``, by file name; a missing set says how to get it."""
    ds, root = dataset(name), data_root(data_dir)
    paths = {}
    for file in ds.files:
        path = root / file.path
        if not path.is_file():
            raise LongdepsError(f"data set {name!r} not found: {path} is missing; "
                                f"{ds.how_to_get.replace('DATA', str(root))} (data root: --data-dir, $LONGDEPS_DATA or ~/.cache/longdeps)")
        verify(file, path)
        paths[Path(file.path).name] = path
    return paths


def open_url(url: str) -> IO[bytes]:
    """``urlopen`` that gives up after ``TIMEOUT`` seconds without an answer (to connect, or to each read)."""
    return urllib.request.urlopen(url, timeout=TIMEOUT)


def fetch(name: str, data_dir: str | Path | None = None,
          opener: Callable[[str], IO[bytes]] | None = None) -> list[Path]:
    """Download the files of ``name`` that are missing or wrong, checking each before it is kept
    (``opener``: how a URL is read, default ``open_url``). Where a download fails, a one-line error
    names the address, why, and how to get the files by hand; no part of that file is left."""
    ds, root = dataset(name), data_root(data_dir)
    todo = []
    for file in ds.files:
        path = root / file.path
        if path.is_file() and sha256_of(path) == file.sha256:
            _verified.add(_key(path))
        else:
            todo.append(file)
    if any(file.url is None for file in todo):
        raise LongdepsError(f"data set {name!r} has no download address; {ds.how_to_get.replace('DATA', str(root))}")
    for i, file in enumerate(todo):
        try:
            download(file, root / file.path, opener or open_url)
        except LongdepsError as err:
            by_hand = "; ".join(f"{f.path} from {f.url} (sha256 {f.sha256})" for f in todo[i:])
            raise LongdepsError(f"cannot download data set {name!r} from {file.url}: {err}; nothing of that file was kept. "
                                f"Download by hand into {root} (--data-dir, else $LONGDEPS_DATA), then check with "
                                f"`longdeps data check`: {by_hand}") from None
        _verified.add(_key(root / file.path))
    return [root / file.path for file in ds.files]


def download(file: DataFile, path: Path, opener: Callable[[str], IO[bytes]]) -> None:
    """``file`` from its URL to ``path``, through a temporary file beside it that is renamed once its
    sha256 is right and deleted otherwise; a one-line error says why it failed."""
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with opener(file.url) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        actual = sha256_of(partial)
        if actual != file.sha256:
            raise LongdepsError(f"refused, its sha256 is {actual}, expected {file.sha256} "
                                f"({partial.stat().st_size} bytes, expected {file.size})")
        os.replace(partial, path)
    except (OSError, http.client.HTTPException) as err:  # urllib's URLError and HTTPError are OSErrors
        raise LongdepsError(failure(err)) from None
    finally:
        partial.unlink(missing_ok=True)
        if created and not any(path.parent.iterdir()):
            path.parent.rmdir()


def failure(err: BaseException) -> str:
    """Why a download failed, in a few words: an HTTP status, a name not resolved, a time-out, ..."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, socket.gaierror):
        return f"its host name could not be resolved, no network or no DNS ({reason})"
    if isinstance(reason, TimeoutError):
        return f"no answer within {TIMEOUT} s"
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def check_all(data_dir: str | Path | None = None) -> list[tuple[str, str]]:
    """``(name, status)`` for every known data set: ``ok``, or why not and how to get it."""
    report = []
    for name in DATASETS:
        try:
            locate(name, data_dir)
            report.append((name, "ok"))
        except LongdepsError as err:
            report.append((name, str(err)))
    return report
