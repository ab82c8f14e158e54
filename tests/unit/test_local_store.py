"""The content-addressed artifact store: digests, idempotent puts, immutability, and failed writes."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudml.adapters.local.store import ArtifactRef, ArtifactStore, digest_path
from cloudml.errors import ArtifactError


def _full_disk(src: str, dst: str) -> object:
    raise OSError(errno.ENOSPC, "No space left on device")


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _leftovers(store: ArtifactStore) -> list[str]:
    return sorted(p.name for p in store.tmp.iterdir())


def test_put_file_is_addressed_by_its_sha256(tmp_path: Path) -> None:
    src = tmp_path / "data.csv"
    src.write_bytes(b"a,b\n1,2\n")
    store = ArtifactStore(tmp_path / "store")
    ref = store.put(src)
    assert ref == ArtifactRef(hashlib.sha256(b"a,b\n1,2\n").hexdigest(), "file", 8)
    assert store.path(ref.digest) == store.objects / ref.digest[:2] / ref.digest
    assert store.path(ref.digest).read_bytes() == b"a,b\n1,2\n"
    assert store.exists(ref.digest) and store.verify(ref.digest)
    assert _leftovers(store) == []


def test_put_folder_digest_covers_relative_paths_and_contents(tmp_path: Path) -> None:
    src = _folder(tmp_path / "model", {"w.bin": b"\x00\x01", "sub/meta.json": b"{}"})
    store = ArtifactStore(tmp_path / "store")
    ref = store.put(src)
    lines = "".join(f"{rel}\0{hashlib.sha256(data).hexdigest()}\n"
                    for rel, data in sorted({"sub/meta.json": b"{}", "w.bin": b"\x00\x01"}.items()))
    assert ref.digest == hashlib.sha256(b"cloudml-dir-v1\n" + lines.encode()).hexdigest()
    assert (ref.kind, ref.size) == ("dir", 4)
    stored = store.path(ref.digest)
    assert (stored / "sub" / "meta.json").read_bytes() == b"{}"
    assert store.verify(ref.digest)


def test_renaming_a_file_inside_a_folder_changes_the_digest(tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", {"x.txt": b"same"})
    b = _folder(tmp_path / "b", {"y.txt": b"same"})
    assert digest_path(a)[0] != digest_path(b)[0]
    assert digest_path(a / "x.txt")[0] == digest_path(b / "y.txt")[0]


def test_put_is_idempotent_and_never_overwrites(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_text("v1")
    store = ArtifactStore(tmp_path / "store")
    first = store.put(src)
    mtime = store.path(first.digest).stat().st_mtime_ns
    assert store.put(src) == first
    assert store.path(first.digest).stat().st_mtime_ns == mtime
    src.write_text("v2")
    second = store.put(src)
    assert second.digest != first.digest
    assert store.path(first.digest).read_text() == "v1"


def test_concurrent_puts_of_the_same_content_store_one_object(tmp_path: Path) -> None:
    src = _folder(tmp_path / "d", {f"f{i}": os.urandom(64) for i in range(5)})
    store = ArtifactStore(tmp_path / "store")
    refs: list[ArtifactRef] = []
    errors: list[BaseException] = []

    def put() -> None:
        try:
            refs.append(store.put(src))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=put) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(refs)) == 1
    assert [p.name for p in store.objects.rglob("*") if p.parent.parent == store.objects] == [refs[0].digest]
    assert store.verify(refs[0].digest)
    assert _leftovers(store) == []


def test_materialize_is_a_copy_the_step_cannot_use_to_change_the_store(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    ref = store.put(_folder(tmp_path / "d", {"x": b"original"}))
    target = store.materialize(ref.digest, tmp_path / "work" / "in")
    (target / "x").write_bytes(b"edited in place")
    assert store.verify(ref.digest)
    assert (store.path(ref.digest) / "x").read_bytes() == b"original"
    # materializing again replaces what is there
    again = store.materialize(ref.digest, target)
    assert (again / "x").read_bytes() == b"original"


def test_verify_detects_tampering_and_missing_objects(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = tmp_path / "f"
    src.write_text("data")
    ref = store.put(src)
    path = store.path(ref.digest)
    path.chmod(0o644)
    path.write_text("tampered")
    assert not store.verify(ref.digest)
    path.unlink()
    assert not store.verify(ref.digest)
    assert not store.exists(ref.digest)
    with pytest.raises(ArtifactError, match="missing from the store") as info:
        store.materialize(ref.digest, tmp_path / "out")
    assert info.value.hint and "--no-cache" in info.value.hint


@pytest.mark.parametrize("bad", ["", "abc", "g" * 64, "A" * 64, "../" + "a" * 61])
def test_path_refuses_anything_but_a_sha256(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ArtifactError, match="is not a SHA-256 digest"):
        ArtifactStore(tmp_path / "store").path(bad)


def test_symlinks_and_missing_sources_are_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    target = tmp_path / "real"
    target.write_text("x")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(ArtifactError, match="symbolic link"):
        store.put(tmp_path / "link")
    folder = _folder(tmp_path / "d", {"a": b"1"})
    (folder / "l").symlink_to(target)
    with pytest.raises(ArtifactError, match="symbolic link"):
        store.put(folder)
    with pytest.raises(ArtifactError, match="does not exist"):
        store.put(tmp_path / "nope")
    assert list(store.objects.iterdir()) == []


def test_a_symlinked_folder_inside_an_artifact_is_refused(tmp_path: Path) -> None:
    outside = _folder(tmp_path / "outside", {"secret.txt": b"not part of the artifact"})
    art = _folder(tmp_path / "art", {"a.txt": b"1"})
    (art / "link").symlink_to(outside, target_is_directory=True)
    store = ArtifactStore(tmp_path / "store")
    try:
        ref = store.put(art)
    except ArtifactError as e:
        assert "symbolic link" in str(e)
        return
    # if it is accepted, the stored object must at least match its own address
    assert store.verify(ref.digest), "stored object does not hash to its digest (it holds the link's target)"


def test_clean_tmp_removes_interrupted_writes(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    (store.tmp / "abc.partial").write_text("half")
    _folder(store.tmp / "def.partial", {"x": b"half"})
    assert store.clean_tmp() == 2
    assert _leftovers(store) == []
    assert store.clean_tmp() == 0


# -- a full disk -------------------------------------------------------------------------------------------
def test_full_disk_on_a_file_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * 1000)
    store = ArtifactStore(tmp_path / "store", copy=_full_disk)
    with pytest.raises(ArtifactError) as info:
        store.put(src)
    err = info.value
    assert str(err) == f"could not store {src}: No space left on device"
    assert err.hint == "free disk space under the cloudml root and retry"
    assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.ENOSPC
    assert not store.exists(hashlib.sha256(b"x" * 1000).hexdigest())
    assert _leftovers(store) == []
    assert list(store.objects.iterdir()) == []


def test_full_disk_on_a_folder_fails_and_leaves_nothing(tmp_path: Path) -> None:
    src = _folder(tmp_path / "model", {"a": b"1", "b": b"2", "c/d": b"3"})
    store = ArtifactStore(tmp_path / "store", copy=_full_disk)
    with pytest.raises(ArtifactError) as info:
        store.put(src)
    assert "No space left on device" in str(info.value)
    assert str(src) in str(info.value)
    assert not store.exists(digest_path(src)[0])
    assert _leftovers(store) == []


def test_full_disk_on_a_folder_says_it_once(tmp_path: Path) -> None:
    src = _folder(tmp_path / "model", {"a": b"1", "b": b"2", "c/d": b"3"})
    store = ArtifactStore(tmp_path / "store", copy=_full_disk)
    with pytest.raises(ArtifactError) as info:
        store.put(src)
    assert str(info.value) == f"could not store {src}: No space left on device"


def test_store_still_works_after_a_failed_write(tmp_path: Path) -> None:
    calls = {"n": 0}

    def fails_once(src: str, dst: str) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return shutil.copyfile(src, dst)

    src = tmp_path / "f"
    src.write_text("payload")
    store = ArtifactStore(tmp_path / "store", copy=fails_once)
    with pytest.raises(ArtifactError, match="No space left on device"):
        store.put(src)
    ref = store.put(src)  # space freed: the same put now succeeds
    assert store.verify(ref.digest)
    assert _leftovers(store) == []


# -- properties --------------------------------------------------------------------------------------------
_names = st.text(alphabet="abcdefgh", min_size=1, max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(_names, st.binary(max_size=64), min_size=1, max_size=5))
def test_put_round_trips_any_folder(tmp_path: Path, files: dict[str, bytes]) -> None:
    case = tmp_path / os.urandom(6).hex()
    src = _folder(case / "src", files)
    store = ArtifactStore(case / "store")
    ref = store.put(src)
    assert ref.digest == digest_path(src)[0]
    assert ref.size == sum(len(v) for v in files.values())
    out = store.materialize(ref.digest, case / "out")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    assert store.put(out) == ref  # the copy has the same address
