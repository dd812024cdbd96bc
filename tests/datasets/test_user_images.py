"""A user's own images (``--dataset PATH``): ``.npz`` files (NHWC and NHW, labels), class
subfolders, files of another size or unreadable ones skipped and counted, no good image
a one-line ``DataError``, and the deterministic train / test split."""

import dataclasses
import warnings

import numpy as np
import pytest
from PIL import Image

from genmodels.datasets.images import (
    load_image_set,
    load_images,
    read_image_folder,
    read_image_npz,
)
from genmodels.datasets.user import UserData, split_indices, user_data_kind
from genmodels.domains.images import check_shape
from genmodels.errors import DataError, MissingFileError
from genmodels.models.tasks.images import ImageTask
from genmodels.nets.unet import UNetConfig


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _gray(n, h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w), dtype=np.uint8)


def test_npz_nhwc_and_nhw_with_and_without_labels(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (7, 4, 3, 3), dtype=np.uint8)
    labels = np.array([2, 0, 1, 2, 2, 0, 1])
    np.savez(tmp_path / "rgb.npz", images=rgb, labels=labels)
    got = read_image_npz(tmp_path / "rgb.npz")
    np.testing.assert_array_equal(got.images, rgb)
    np.testing.assert_array_equal(got.labels, labels)
    assert got.labels.dtype == np.int64 and got.class_names == ("0", "1", "2")

    gray = _gray(5)
    names = np.array(["cat", "dog"])
    np.savez(tmp_path / "gray.npz", images=gray, labels=[1, 1, 0, 0, 1], class_names=names)
    got = read_image_npz(tmp_path / "gray.npz")
    assert got.images.shape == (5, 6, 5, 1) and got.class_names == ("cat", "dog")
    np.testing.assert_array_equal(got.images[..., 0], gray)
    assert user_data_kind(str(tmp_path / "gray.npz")) == "images"

    np.savez(tmp_path / "plain.npz", images=gray)  # no labels: none invented
    plain = read_image_npz(tmp_path / "plain.npz")
    assert plain.labels is None and plain.class_names == ()
    # integers in 0..255 of another dtype are taken as pixels
    np.savez(tmp_path / "int.npz", images=gray.astype(np.int32))
    np.testing.assert_array_equal(read_image_npz(tmp_path / "int.npz").images[..., 0], gray)


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"pixels": np.zeros((2, 4, 4), np.uint8)}, r"no 'images' array .*pixels"),
        ({"images": np.zeros((2, 4, 4), np.float32) + 0.5}, r"float32; save uint8"),
        ({"images": np.zeros((2, 3, 4, 4), np.uint8)}, r"channels first\?"),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": [0]}, r"'labels' is .*\[2\]"),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": [0, -1]}, r"integers >= 0"),
        ({"images": np.zeros((0, 4, 4), np.uint8)}, r"expected \[N, H, W, C\]"),
    ],
)
def test_bad_npz_is_a_one_line_data_error(tmp_path, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=match) as e:
        read_image_npz(tmp_path / "bad.npz")
    assert "\n" not in str(e.value)


def test_not_an_npz_and_missing_paths(tmp_path):
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_images(tmp_path / "x.npz")
    with pytest.raises(MissingFileError):
        load_images(tmp_path / "nothing.npz")


def test_class_subfolders_give_sorted_labels(tmp_path):
    gray = _gray(7)
    classes = ["zebra", "ant", "moth", "ant", "zebra", "zebra", "moth"]
    for i, (a, c) in enumerate(zip(gray, classes)):
        _png(tmp_path / "d" / c / f"{i}.png", a)
    got = read_image_folder(tmp_path / "d")
    assert got.class_names == ("ant", "moth", "zebra")
    # files are read in path order: ant/1, ant/3, moth/2, moth/6, zebra/0, zebra/4, zebra/5
    order = [1, 3, 2, 6, 0, 4, 5]
    np.testing.assert_array_equal(got.images[..., 0], gray[order])
    np.testing.assert_array_equal(got.labels, [0, 0, 1, 1, 2, 2, 2])
    # a flat folder has no labels
    for i, a in enumerate(gray):
        _png(tmp_path / "flat" / f"{i}.png", a)
    flat = read_image_folder(tmp_path / "flat")
    assert flat.labels is None and flat.class_names == ()
    np.testing.assert_array_equal(flat.images[..., 0], gray)
    # the split keeps each image's label
    train = load_image_set(tmp_path / "d", "train", UserData(test_fraction=0.3))
    test = load_image_set(tmp_path / "d", "test", UserData(test_fraction=0.3))
    tr, te = split_indices(7, 0.3, 0)
    np.testing.assert_array_equal(train.labels, got.labels[tr])
    np.testing.assert_array_equal(test.labels, got.labels[te])
    assert test.class_names == got.class_names


def test_other_sizes_channels_and_unreadable_files_are_skipped_and_counted(tmp_path):
    gray = _gray(6, 8, 8)
    folder = tmp_path / "mixed"
    for i, a in enumerate(gray):
        _png(folder / f"g{i}.png", a)
    Image.fromarray(gray[0]).save(folder / "g9.jpg", quality=100)  # JPEG is read too
    _png(folder / "big.png", _gray(1, 9, 8)[0])  # another size
    _png(folder / "colour.png", np.full((8, 8, 3), [255, 0, 0], np.uint8))  # among gray ones
    (folder / "broken.png").write_bytes(b"\x89PNG truncated")
    (folder / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning) as rec:
        got = read_image_folder(folder)
    msgs = [str(w.message) for w in rec if "skipped" in str(w.message)]
    assert len(msgs) == 1
    msg = msgs[0]
    assert "skipped 3 of 10 image files" in msg
    assert "broken.png (unreadable" in msg and "big.png (9 x 8, not 8 x 8" in msg
    assert "colour.png (colour among gray-scale images)" in msg
    assert got.images.shape == (7, 8, 8, 1)
    np.testing.assert_array_equal(got.images[:6, ..., 0], gray)  # g0..g5 then g9.jpg
    assert np.abs(got.images[6, ..., 0].astype(int) - gray[0]).mean() < 8  # lossy JPEG
    # read again from the conversion cache: same arrays, the warning repeats
    with pytest.warns(UserWarning, match="skipped 3 of 10"):
        again = read_image_folder(folder)
    np.testing.assert_array_equal(again.images, got.images)


def test_colour_majority_repeats_gray_files(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    for i, a in enumerate(rgb):
        _png(tmp_path / "c" / f"{i}.png", a)
    _png(tmp_path / "c" / "z.png", rgb[0, ..., 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped: gray -> RGB is lossless
        got = read_image_folder(tmp_path / "c")
    assert got.images.shape == (4, 4, 4, 3)
    np.testing.assert_array_equal(got.images[3], np.repeat(rgb[0, ..., :1], 3, -1))


def test_no_good_image_is_a_one_line_data_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"nope")
    (tmp_path / "bad" / "b.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"bad: no readable image among 2 files: a\.png") as e:
        load_images(tmp_path / "bad")
    assert "\n" not in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.png / \.jpg / \.jpeg files"):
        load_images(tmp_path / "empty")


def test_split_is_deterministic_disjoint_and_follows_the_options(tmp_path):
    gray = _gray(20, 4, 4)
    np.savez(tmp_path / "d.npz", images=gray, labels=np.arange(20) % 3)
    path = tmp_path / "d.npz"
    train = load_images(path, "train")
    test = load_images(path, "test")
    tr, te = split_indices(20, 0.1, 0)
    assert len(test) == 2 and len(train) == 18
    np.testing.assert_array_equal(train[..., 0], gray[tr])
    np.testing.assert_array_equal(test[..., 0], gray[te])
    np.testing.assert_array_equal(load_images(path, "test"), test)  # same call, same split
    other = UserData(test_fraction=0.25, split_seed=3)
    te3 = split_indices(20, 0.25, 3)[1]
    np.testing.assert_array_equal(load_images(path, "test", other)[..., 0], gray[te3])
    assert len(te3) == 5 and not np.array_equal(te3, te)
    # a test file taken as given: the data set is the whole training split
    np.savez(tmp_path / "t.npz", images=gray[:3])
    given = UserData(test_file=str(tmp_path / "t.npz"))
    np.testing.assert_array_equal(load_images(path, "train", given)[..., 0], gray)
    np.testing.assert_array_equal(load_images(path, "test", given)[..., 0], gray[:3])
    # a folder with train/ and test/ subfolders is read as it is split
    for split, part in (("train", gray[:5]), ("test", gray[5:7])):
        for i, a in enumerate(part):
            _png(tmp_path / "tt" / split / f"{i}.png", a)
    np.testing.assert_array_equal(load_images(tmp_path / "tt", "test")[..., 0], gray[5:7])


def test_network_size_mismatch_names_the_options_to_pass(tmp_path):
    np.savez(tmp_path / "rgb.npz", images=np.zeros((4, 32, 32, 3), np.uint8))
    task = ImageTask(str(tmp_path / "rgb.npz"), (28, 28, 1))
    with pytest.raises(DataError) as e:
        task.train_arrays()
    msg = str(e.value)
    assert "\n" not in msg and "are 32 x 32 x 3 (H x W x C)" in msg and "expects 28 x 28 x 1" in msg
    assert "--net.img-resolution 32 --net.in-channels 3 --net.out-channels 3" in msg
    with pytest.raises(DataError, match="needs square images, these are 24 x 32"):
        check_shape(
            np.zeros((1, 24, 32, 1), np.uint8), (28, 28, 1), "x", "y", UNetConfig.fit_options
        )


def test_masked_diffusion_images_read_a_users_npz_and_its_test_split(tmp_path):
    from genmodels.recipes import load_recipe

    gray = _gray(10, 6, 6)
    np.savez(tmp_path / "d.npz", images=gray)
    cfg, _ = load_recipe("mdm_mnist")
    data = UserData(test_fraction=0.3, split_seed=1)
    cfg = dataclasses.replace(cfg, dataset=str(tmp_path / "d.npz"), data=data, height=6, width=6)
    method = cfg.build()
    tr, te = split_indices(10, 0.3, 1)
    np.testing.assert_array_equal(method.task.data[..., 0], gray[tr])
    test = gray[te][..., None]
    assert method.evaluate(test, split="test")["level_tv"] == 0.0
    assert method.evaluate(test, split="train")["level_tv"] > 0.0
    wrong = dataclasses.replace(cfg, height=28, width=28).build()
    with pytest.raises(DataError, match=r"6 x 6 x 1 .*; pass --height 6 --width 6"):
        wrong.task.train_arrays()
