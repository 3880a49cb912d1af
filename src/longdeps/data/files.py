"""Finding data files, checking them, and downloading them.

The data root is, in order: the explicit ``data_dir`` (``--data-dir``), the
``LONGDEPS_DATA`` environment variable, ``~/.cache/longdeps``. Every file is
checked against its recorded size and sha256 before it is read (once per
process), so a corrupted or truncated copy is refused with both digests.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Callable, IO

from longdeps.data.registry import DATASETS, DataFile, Dataset
from longdeps.errors import LongdepsError

_verified: set[tuple[str, int, int]] = set()


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


def fetch(name: str, data_dir: str | Path | None = None,
          opener: Callable[[str], IO[bytes]] = urllib.request.urlopen) -> list[Path]:
    """Download the files of ``name`` that are missing or wrong, checking each before it is kept."""
    ds, root = dataset(name), data_root(data_dir)
    done = []
    for file in ds.files:
        path = root / file.path
        if path.is_file() and sha256_of(path) == file.sha256:
            _verified.add(_key(path))
            done.append(path)
            continue
        if file.url is None:
            raise LongdepsError(f"data set {name!r} has no download address; {ds.how_to_get.replace('DATA', str(root))}")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        try:
            with opener(file.url) as response, open(partial, "wb") as out:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
            actual = sha256_of(partial)
            if actual != file.sha256:
                raise LongdepsError(f"download of {file.url} refused: sha256 is {actual}, expected {file.sha256}")
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        _verified.add(_key(path))
        done.append(path)
    return done


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
