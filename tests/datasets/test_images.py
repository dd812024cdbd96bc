"""Image loaders on small fixtures: CIFAR-10 python batches (pixel order), PNG folders."""

import pickle

import numpy as np
import pytest
from PIL import Image

from genmodels.datasets.images import (
    CIFAR10_SPLITS,
    load_cifar10,
    load_image_folder,
    load_images,
    read_cifar_batch,
)
from genmodels.datasets.registry import REGISTRY, DatasetError
from genmodels.errors import DataError


def cifar_rows(n: int, seed: int) -> np.ndarray:
    """uint8 [n, 3072] rows in the CIFAR layout (R plane, G plane, B plane; row-major)."""
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    """A data folder with a CIFAR-10 fixture: 2 images per batch file."""
    folder = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows = {}
    for i, name in enumerate(CIFAR10_SPLITS["train"] + CIFAR10_SPLITS["test"]):
        rows[name] = cifar_rows(2, i)
        batch = {
            b"batch_label": name.encode(),
            b"labels": [i % 10, (i + 3) % 10],
            b"data": rows[name],
            b"filenames": [b"a.png", b"b.png"],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)  # the archive's batches are Python 2 pickles
    monkeypatch.setenv("GENMODELS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GENMODELS_OFFLINE", "1")
    return folder, rows


def test_cifar10_batches_load_in_order_with_channel_major_pixels(cifar_dir):
    _, rows = cifar_dir
    images, labels = load_cifar10("train")
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, [0, 3, 1, 4, 2, 5, 3, 6, 4, 7])
    data = np.concatenate([rows[n] for n in CIFAR10_SPLITS["train"]])
    # pixel (r, c) of channel k is entry k * 1024 + r * 32 + c of the row
    for i, r, c, k in [(0, 0, 0, 0), (3, 5, 17, 1), (9, 31, 30, 2), (6, 12, 0, 2)]:
        assert images[i, r, c, k] == data[i, k * 1024 + r * 32 + c]
    np.testing.assert_array_equal(images[4, ..., 1].ravel(), data[4, 1024:2048])
    test, test_labels = load_cifar10("test")
    np.testing.assert_array_equal(test.transpose(0, 3, 1, 2).reshape(2, -1), rows["test_batch"])
    assert test_labels.tolist() == [5, 8]
    np.testing.assert_array_equal(load_images("cifar10", "test"), test)


def test_cifar10_errors(cifar_dir, tmp_path, monkeypatch):
    folder, _ = cifar_dir
    with pytest.raises(DatasetError, match="unknown CIFAR-10 split"):
        load_cifar10("val")
    bad = tmp_path / "bad_batch"
    with open(bad, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DatasetError, match=r"bad_batch.*expected uint8 \[N, 3072\]"):
        read_cifar_batch(bad)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3 is missing"):
        load_cifar10("train")
    # no extracted folder and no archive, offline: the error names the archive and URL
    monkeypatch.setenv("GENMODELS_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DatasetError, match=r"cifar-10-python\.tar\.gz.*toronto"):
        load_cifar10("train")
    card = REGISTRY["cifar10"]
    assert card.files[0].url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert card.licence and card.citation


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_png_folder_rgb_gray_and_split_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 6, 5, 3), dtype=np.uint8)  # H = 6, W = 5
    for i, a in enumerate(rgb):
        _png(tmp_path / "rgb" / f"{i:02d}.png", a)
    (tmp_path / "rgb" / "notes.txt").write_text("ignored")
    got = load_image_folder(tmp_path / "rgb")
    np.testing.assert_array_equal(got, rgb)

    gray = rng.integers(0, 256, (2, 4, 4), dtype=np.uint8)
    for split in ("train", "test"):
        for i, a in enumerate(gray):
            _png(tmp_path / "gray" / split / f"{i}.png", a if split == "train" else 255 - a)
    np.testing.assert_array_equal(load_images(tmp_path / "gray", "train"), gray[..., None])
    np.testing.assert_array_equal(
        load_images(str(tmp_path / "gray"), "test"), 255 - gray[..., None]
    )

    # gray and colour mixed: everything becomes RGB (gray repeated to 3 channels)
    _png(tmp_path / "mixed" / "a.png", gray[0])
    _png(tmp_path / "mixed" / "b.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    mixed = load_image_folder(tmp_path / "mixed")
    assert mixed.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(mixed[0], np.repeat(gray[0][..., None], 3, -1))


def test_png_folder_errors(tmp_path):
    _png(tmp_path / "f" / "a.png", np.zeros((4, 4), np.uint8))
    _png(tmp_path / "f" / "b.png", np.zeros((4, 5), np.uint8))
    # a size tie keeps the first file's size; the other is skipped with a warning
    with pytest.warns(UserWarning, match=r"skipped 1 of 2 .*b\.png \(4 x 5, not 4 x 4"):
        assert load_image_folder(tmp_path / "f").shape == (1, 4, 4, 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.png / \.jpg / \.jpeg files"):
        load_image_folder(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"no readable image among 1 files: x\.png"):
        load_image_folder(tmp_path / "broken")
    with pytest.raises(DatasetError, match="unknown image data set 'svhn'"):
        load_images("svhn")
