import dataclasses
import hashlib
import os

import pytest
from PIL import Image

from aleaart.errors import NotFound
from aleaart.metadata import ImageInfo, encode_png, image_filename, render_key
from aleaart.params import RenderParams, spec_from_params
from aleaart.store import ImageStore, new_record, write_atomically


def make_image(token_id="1", seed=1):
    spec = spec_from_params(RenderParams(0, 0, 0, 0, 20, 75, seed, 0))
    key = render_key(spec, {"model": "m"}, token_id)
    png = encode_png(Image.new("RGB", (8, 8), (seed, 0, 0)), ImageInfo(spec=spec, model="m", version="t",
                                                                      token_id=token_id, key=key))
    record = new_record(key=key, token_id=token_id, file=image_filename(token_id, key), prompt=spec.prompt,
                        params=spec.params.to_json(), spec=spec.canonical(), sampler=spec.sampler, width=8,
                        height=8, model="m", seconds=1.5, sha256=hashlib.sha256(png).hexdigest())
    return record, png


@pytest.fixture
def store(tmp_path):
    s = ImageStore.open(tmp_path / "images", tmp_path / "images" / "index.db")
    yield s
    s.close()


def test_put_get_and_file(store):
    record, png = make_image()
    stored = store.put(record, png)
    assert stored == dataclasses.replace(record, size=len(png)) and store.get(record.key) == stored
    assert store.path_of(record.file).read_bytes() == png
    assert not list(store.folder.glob(".tmp-*"))


def test_list_newest_first_filtered_and_paged(store):
    records = [make_image(token_id=str(t), seed=s)[0] for t, s in [(1, 1), (2, 2), (1, 3)]]
    for r in records:
        store.put(r, make_image(r.token_id, r.spec["seed"])[1])
    page, total = store.list(limit=2)
    assert total == 3 and [i.key for i in page] == [records[2].key, records[1].key]
    page, total = store.list(token_id="1", limit=10, offset=1)
    assert total == 2 and [i.key for i in page] == [records[0].key]


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "a.png"
    target.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_reconcile_on_open(tmp_path):
    folder = tmp_path / "images"
    store = ImageStore.open(folder, folder / "index.db")
    kept, kept_png = make_image(seed=1)
    lost_file, lost_png = make_image(seed=2)
    for r, png in [(kept, kept_png), (lost_file, lost_png)]:
        store.put(r, png)
    store.close()
    (folder / lost_file.file).unlink()
    (folder / ".tmp-crashed.png").write_bytes(b"half a png")
    orphan, orphan_png = make_image(token_id="9", seed=3)
    (folder / orphan.file).write_bytes(orphan_png)  # a file whose row never made it

    store = ImageStore.open(folder, folder / "index.db")
    assert not (folder / ".tmp-crashed.png").exists()
    assert store.get(lost_file.key) is None
    assert store.get(kept.key) == dataclasses.replace(kept, size=len(kept_png))
    recovered = store.get(orphan.key)
    assert recovered is not None and recovered.token_id == "9" and recovered.params == orphan.params
    store.close()


@pytest.mark.parametrize("name", [
    "../index.db", "index.db", "/etc/passwd", "art_token_1_abc.png", "art_token_1_0123456789abcdef.png\x00",
    "art_token_x_0123456789abcdef.png", "ART_TOKEN_1_0123456789ABCDEF.png",
])
def test_path_of_refuses_anything_not_ours(store, name):
    with pytest.raises(NotFound):
        store.path_of(name)


def test_path_of_refuses_symlinks_and_missing(store, tmp_path):
    (tmp_path / "secret.png").write_bytes(b"secret")
    link = store.folder / "art_token_1_0123456789abcdef.png"
    link.symlink_to(tmp_path / "secret.png")
    with pytest.raises(NotFound):
        store.path_of(link.name)
    with pytest.raises(NotFound):
        store.path_of("art_token_2_0123456789abcdef.png")


def test_stored_files_get_the_umasks_normal_mode(store):
    old = os.umask(0o022)
    try:
        record, png = make_image()
        store.put(record, png)
    finally:
        os.umask(old)
    assert (store.folder / record.file).stat().st_mode & 0o777 == 0o644  # readable by a proxy or another user


def test_derived_images_are_linked_to_their_source(store):
    source, source_png = make_image(seed=1)
    store.put(source, source_png)
    child, child_png = make_image(seed=2)
    child = dataclasses.replace(child, kind="upscale", source=source.key)
    store.put(child, child_png)
    assert store.get(child.key).source == source.key and store.get(child.key).kind == "upscale"
    page, total = store.list(source=source.key)
    assert total == 1 and [i.key for i in page] == [child.key]
    assert store.get(source.key).kind == "render" and store.get(source.key).source is None


def test_bad_entries_in_the_folder_are_skipped_not_fatal(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "art_token_1_0123456789abcdef.png").mkdir()  # a directory named like a PNG
    spec = spec_from_params(RenderParams(0, 0, 0, 0, 20, 75, 1, 0))
    wrong_shape = ImageInfo(spec=spec, model="m", version="t", token_id="2", key="k")
    png = encode_png(Image.new("RGB", (8, 8)), wrong_shape)
    png = png.replace(b'"spec":{', b'"spec":[{', 1)  # valid JSON of the wrong shape
    (folder / "art_token_2_0123456789abcdef.png").write_bytes(png)
    (folder / "art_token_3_0123456789abcdef.png").write_bytes(b"not a png")
    good, good_png = make_image(token_id="4", seed=4)
    (folder / good.file).write_bytes(good_png)

    store = ImageStore.open(folder, folder / "index.db")
    try:
        report = store.reconcile()
        assert store.get(good.key) is not None and store.list()[1] == 1
        assert report["skipped"] == 3
    finally:
        store.close()


def test_a_damaged_file_is_not_served_and_is_moved_aside(store):
    record, png = make_image()
    store.put(record, png)
    served = store.served_file(record.file)
    assert store.file_bytes(served) == png  # no memory cache here: read from disk each time
    (store.folder / record.file).write_bytes(png[: len(png) // 2])  # truncated behind the service's back
    with pytest.raises(NotFound, match="damaged"):
        store.file_bytes(served)
    assert store.get(record.key) is None and (store.folder / (".corrupt-" + record.file)).exists()
    with pytest.raises(NotFound):
        store.served_file(record.file)


def test_a_file_overwritten_with_garbage_of_the_same_size_is_not_served_with_the_old_etag(store):
    record, png = make_image()
    store.put(record, png)
    served = store.served_file(record.file)
    (store.folder / record.file).write_bytes(os.urandom(len(png)))  # the size check alone would pass it
    with pytest.raises(NotFound, match="damaged"):
        store.file_bytes(served)
    assert store.get(record.key) is None and store.known_file(record.file) is None


def test_a_folder_where_an_image_goes_is_moved_aside_not_a_failure_of_every_render(store):
    record, png = make_image()
    (store.folder / record.file).mkdir()
    (store.folder / record.file / "something").write_text("kept")
    store.put(record, png)
    assert store.path_of(record.file).read_bytes() == png
    [aside] = [p for p in store.folder.iterdir() if p.name.startswith(".corrupt-") and p.is_dir()]
    assert (aside / "something").read_text() == "kept"


def test_a_file_damaged_before_it_is_first_served_is_not_served(store):
    record, png = make_image()
    store.put(record, png)
    (store.folder / record.file).write_bytes(png + b"junk")
    with pytest.raises(NotFound, match="damaged"):
        store.served_file(record.file)


def test_served_pngs_and_their_base64_come_from_memory_after_the_first_time(tmp_path):
    import base64
    import hashlib

    from aleaart.database import Database

    store = ImageStore(tmp_path / "images", Database(tmp_path / "index.db"), cache_mb=1)
    try:
        record, png = make_image()
        stored = store.put(dataclasses.replace(record, sha256=hashlib.sha256(png).hexdigest()), png)
        served = store.served_file(stored.file)
        assert served.etag == f'"{stored.sha256}"' and store.known_file(stored.file) == served
        assert store.cached_bytes(served) is None and store.file_bytes(served) == png
        (store.folder / stored.file).unlink()  # gone from disk: memory still answers, the index is not asked
        assert store.cached_bytes(served) == png and store.file_bytes(served) == png
        assert store.data_url(stored) == "data:image/png;base64," + base64.b64encode(png).decode()
        again = store.put(dataclasses.replace(stored, sha256="0" * 64), png)  # stored anew: known no more
        assert store.known_file(again.file) is None
    finally:
        store.close()


def test_images_found_once_are_known_from_memory_until_stored_anew_or_damaged(store):
    record, png = make_image()
    assert store.known(record.key) is None
    store.put(record, png)
    assert store.known(record.key) is None  # only what get() found: put() alone does not fill it
    found = store.get(record.key)
    assert store.known(record.key) == found
    again = store.put(dataclasses.replace(record, seconds=9.0), png)
    assert store.known(record.key) is None and store.get(record.key) == again == store.known(record.key)
    (store.folder / record.file).write_bytes(png[:10])  # damaged: serving finds it and unindexes it
    with pytest.raises(NotFound, match="damaged"):
        store.served_file(record.file)
    assert store.known(record.key) is None and store.get(record.key) is None


def test_damaged_files_are_found_at_start(tmp_path):
    folder = tmp_path / "images"
    store = ImageStore.open(folder, folder / "index.db")
    record, png = make_image()
    store.put(record, png)
    store.close()
    (folder / record.file).write_bytes(png + b"trailing junk")
    store = ImageStore.open(folder, folder / "index.db")
    try:
        assert store.get(record.key) is None
    finally:
        store.close()


def test_names_are_matched_whole_and_long_ones_not_echoed(store):
    with pytest.raises(NotFound) as error:
        store.path_of("art_token_1_0123456789abcdef.png\n")
    with pytest.raises(NotFound) as error:
        store.path_of("x" * 100_000)
    assert len(str(error.value)) < 200


def test_read_png_gives_the_bytes_a_job_was_asked_for_or_not_found(store):
    import hashlib

    record, png = make_image()
    store.put(record, png)
    assert store.read_png(record.key, hashlib.sha256(png).hexdigest()) == png
    with pytest.raises(NotFound, match="not the one this job was asked for"):
        store.read_png(record.key, "0" * 64)
    with pytest.raises(NotFound, match="no stored image"):
        store.read_png("f" * 64, "0" * 64)
