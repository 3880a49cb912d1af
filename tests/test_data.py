"""The data layer: where data sets live, checksum checks, and downloads (never over the network here)."""

from __future__ import annotations

import hashlib
import io
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from longdeps.cli import main
from longdeps.data import DATASETS, DataFile, Dataset, check_all, data_root, fetch, locate, sha256_of
from longdeps.data.idx import read_idx
from longdeps.errors import LongdepsError

SHARED = data_root()
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist").is_dir(),
                                reason=f"no MNIST under {SHARED}: set LONGDEPS_DATA to a folder with mnist/")
MNIST_FILES = [Path(f.path).name for f in DATASETS["mnist"].files]
LABELS = "t10k-labels-idx1-ubyte.gz"  # the smallest MNIST file, 4542 bytes


def mnist_root(tmp_path: Path, labels: bytes) -> Path:
    """A data root with the shared MNIST images and train labels (linked) and ``labels`` as the test labels."""
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    for name in MNIST_FILES:
        if name != LABELS:
            (root / "mnist" / name).symlink_to(SHARED / "mnist" / name)
    (root / "mnist" / LABELS).write_bytes(labels)
    return root


def shared_bytes(url: str) -> io.BytesIO:
    """A fake ``urlopen``: the shared copy of the file the URL names."""
    return io.BytesIO((SHARED / "mnist" / url.rsplit("/", 1)[-1]).read_bytes())


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# -- the data root ------------------------------------------------------------------

def test_data_root_is_explicit_then_environment_then_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LONGDEPS_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_root("~/data") == tmp_path / "home" / "data"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("LONGDEPS_DATA")
    assert data_root() == tmp_path / "home" / ".cache" / "longdeps"


# -- locate -----------------------------------------------------------------------

@needs_mnist
def test_locate_verifies_the_shared_files():
    for name in ("mnist", "fashion-mnist"):
        if not (SHARED / name).is_dir():
            continue
        paths = locate(name)
        assert sorted(paths) == sorted(MNIST_FILES)
        for file in DATASETS[name].files:
            path = paths[Path(file.path).name]
            assert path == SHARED / file.path and path.stat().st_size == file.size and sha256_of(path) == file.sha256
    assert dict(check_all())["mnist"] == "ok"


@needs_mnist
def test_a_corrupted_file_is_refused_naming_it_and_both_digests(tmp_path):
    labels = bytearray((SHARED / "mnist" / LABELS).read_bytes())
    labels[2000] ^= 0xFF
    root = mnist_root(tmp_path, bytes(labels))
    bad = root / "mnist" / LABELS
    with pytest.raises(LongdepsError) as err:
        locate("mnist", root)
    message = str(err.value)
    expected = DATASETS["mnist"].files[-1].sha256
    assert str(bad) in message and sha256_of(bad) in message and expected in message and "\n" not in message


@needs_mnist
def test_a_truncated_file_is_refused_with_its_size(tmp_path):
    root = mnist_root(tmp_path, (SHARED / "mnist" / LABELS).read_bytes()[:3000])
    with pytest.raises(LongdepsError, match="3000 bytes, expected 4542") as err:
        locate("mnist", root)
    assert str(root / "mnist" / LABELS) in str(err.value) and "\n" not in str(err.value)


def test_a_missing_set_says_how_to_get_it(tmp_path):
    with pytest.raises(LongdepsError) as err:
        locate("mnist", tmp_path)
    message = str(err.value)
    assert "longdeps data fetch mnist" in message and str(tmp_path / "mnist" / MNIST_FILES[0]) in message
    assert "\n" not in message
    with pytest.raises(LongdepsError, match="unknown data set 'mnist2'"):
        locate("mnist2", tmp_path)


# -- fetch --------------------------------------------------------------------------

@needs_mnist
def test_fetch_writes_verified_files(tmp_path):
    urls = []
    paths = fetch("mnist", tmp_path, opener=lambda url: urls.append(url) or shared_bytes(url))
    assert [url.rsplit("/", 1)[-1] for url in urls] == MNIST_FILES
    assert paths == [tmp_path / f.path for f in DATASETS["mnist"].files]
    assert sorted(files_under(tmp_path)) == sorted(paths)
    assert locate("mnist", tmp_path)[LABELS] == tmp_path / "mnist" / LABELS

    def no_network(url):
        raise AssertionError(f"{url} fetched again")
    assert fetch("mnist", tmp_path, opener=no_network) == paths  # files already good: nothing downloaded


@needs_mnist
def test_fetch_refuses_wrong_bytes_and_keeps_nothing(tmp_path):
    def wrong(url):
        data = bytearray(shared_bytes(url).getvalue())
        data[100] ^= 1
        return io.BytesIO(bytes(data))
    with pytest.raises(LongdepsError, match="refused, its sha256 is"):
        fetch("mnist", tmp_path, opener=wrong)
    assert files_under(tmp_path) == []


@needs_mnist
def test_fetch_replaces_a_corrupted_file(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / LABELS).write_bytes(b"corrupted")
    fetch("mnist", tmp_path, opener=shared_bytes)
    assert sha256_of(tmp_path / "mnist" / LABELS) == DATASETS["mnist"].files[-1].sha256


@needs_mnist
def test_fetch_from_a_file_url(monkeypatch, tmp_path):
    source = tmp_path / "mirror" / LABELS
    source.parent.mkdir()
    shutil.copy(SHARED / "mnist" / LABELS, source)
    known = DATASETS["mnist"].files[-1]
    monkeypatch.setitem(DATASETS, "labels-only", Dataset(
        "labels-only", "MNIST test labels", (DataFile(f"labels/{LABELS}", known.size, known.sha256, source.as_uri()),),
        "copy it into DATA/labels/"))
    root = tmp_path / "data"
    assert fetch("labels-only", root) == [root / "labels" / LABELS]
    assert read_idx(locate("labels-only", root)[LABELS]).shape == (10000,)


class Dropped(io.BytesIO):
    """A response whose connection goes silent after its first bytes."""

    def read(self, size=-1):
        if self.tell():
            raise TimeoutError("The read operation timed out")
        return super().read(1000)


FAILURES = {  # urlopen's failures -> what the error says
    "no name resolution": (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")),
                           "its host name could not be resolved, no network or no DNS ([Errno -2] Name or service not known)"),
    "connection time-out": (urllib.error.URLError(TimeoutError("timed out")), "no answer within 30 s"),
    "read time-out": (Dropped(b"x" * 5000), "no answer within 30 s"),
    "HTTP 404": (urllib.error.HTTPError("URL", 404, "Not Found", None, None), "HTTP 404 Not Found"),
    "wrong sha256": (io.BytesIO(b"not the file"), f"refused, its sha256 is {hashlib.sha256(b'not the file').hexdigest()}, "
                     f"expected {DATASETS['mnist'].files[0].sha256} (12 bytes, expected 9912422)"),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_download_is_one_line_with_the_address_and_the_files_and_leaves_nothing(failure, monkeypatch,
                                                                                         tmp_path, capsys):
    outcome, why = FAILURES[failure]
    asked = []

    def urlopen(url, timeout=None):
        asked.append((url, timeout))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert main(["data", "fetch", "mnist", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    first = DATASETS["mnist"].files[0]
    assert asked == [(first.url, 30)]  # the first file, with a time-out
    assert err.startswith(f"longdeps: error: cannot download data set 'mnist' from {first.url}: {why}; nothing of that "
                          f"file was kept. Download by hand into {tmp_path} (--data-dir, else $LONGDEPS_DATA), then "
                          "check with `longdeps data check`: ") and err.count("\n") == 1
    for file in DATASETS["mnist"].files:
        assert f"{file.path} from {file.url} (sha256 {file.sha256})" in err
    assert list(tmp_path.iterdir()) == []


def test_fetch_without_an_address_says_how_to_get_the_set(tmp_path):
    def no_network(url):
        raise AssertionError(f"{url} fetched")
    with pytest.raises(LongdepsError, match="no download address.*pip download --no-deps sktime==1.2.0"):
        fetch("ucr:GunPoint", tmp_path, opener=no_network)
