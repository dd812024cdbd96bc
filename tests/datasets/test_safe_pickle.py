"""The restricted unpickler: arrays, lists and strings load; a pickle that runs code does not."""

import os
import pickle
import struct

import numpy as np
import pytest

from genmodels.datasets.images import read_cifar_batch
from genmodels.datasets.safe_pickle import safe_load
from genmodels.errors import DataError


def _batch(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(x) for x in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _assert_same_batch(got, want):
    assert set(got) == set(want)
    assert got[b"batch_label"] == want[b"batch_label"]
    assert got[b"labels"] == want[b"labels"] and got[b"filenames"] == want[b"filenames"]
    assert got[b"data"].dtype == np.uint8
    np.testing.assert_array_equal(got[b"data"], want[b"data"])


def _py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A protocol-2 pickle as Python 2 and numpy 1.x wrote the CIFAR-10 batches: byte
    strings (``U``/``T`` opcodes) and ``numpy.core.multiarray._reconstruct``."""

    def s(b: bytes) -> bytes:  # a Python 2 str
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b

    def glob(module: str, name: str) -> bytes:
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    minus1 = b"J" + struct.pack("<i", -1)
    dtype = (
        glob("numpy", "dtype") + s(b"u1") + b"K\x00K\x01\x87R"
        + b"(K\x03" + s(b"|") + b"NNN" + minus1 + minus1 + b"K\x00tb"
    )  # fmt: skip
    array = (
        glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray")
        + b"K\x00\x85" + s(b"b") + b"\x87R"
        + b"(K\x01" + b"J" + struct.pack("<i", data.shape[0]) + b"J" + struct.pack("<i", data.shape[1])
        + b"\x86" + dtype + b"\x89" + s(data.tobytes()) + b"tb"
    )  # fmt: skip
    items = s(b"data") + array + s(b"labels") + b"](" + b"".join(b"K" + bytes([x]) for x in labels)
    return b"\x80\x02}(" + items + b"eu."


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_cifar_like_batch_round_trips(tmp_path, protocol):
    want = _batch()
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(want, protocol=protocol))
    _assert_same_batch(safe_load(path, encoding="bytes"), want)


def test_python2_batches_with_numpy_core_names_load(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, (2, 3072), dtype=np.uint8)
    path = tmp_path / "test_batch"
    path.write_bytes(_py2_batch(data, [3, 7]))
    got = safe_load(path, encoding="bytes")
    assert got[b"labels"] == [3, 7]
    np.testing.assert_array_equal(got[b"data"], data)
    images, labels = read_cifar_batch(path)
    assert images.shape == (2, 32, 32, 3) and labels.tolist() == [3, 7]
    # red plane first, channel-major rows
    np.testing.assert_array_equal(images[0, :, :, 0].ravel(), data[0, :1024])


def test_numpy_scalars_sets_and_object_free_arrays_load(tmp_path):
    want = {"x": np.float32(1.5), "s": {1, 2}, "f": np.arange(6.0).reshape(2, 3).T}
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(want))
    got = safe_load(path)
    assert got["x"] == np.float32(1.5) and got["s"] == {1, 2}
    np.testing.assert_array_equal(got["f"], want["f"])


class _RunsCode:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_pickle_that_runs_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = {
        b"data": np.zeros((1, 3072), np.uint8),
        b"labels": [_RunsCode(f"echo pwned > {marker}")],
    }
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(evil, protocol=2))
    # the plain unpickler does run it: the test would catch a harmless payload
    pickle.loads(path.read_bytes())
    assert marker.exists()
    marker.unlink()
    with pytest.raises(DataError, match=r"data_batch_1: not loaded.*(posix|os)\.system") as e:
        safe_load(path, encoding="bytes")
    assert not marker.exists()
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match=r"not loaded.*Delete .* to extract"):
        read_cifar_batch(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj",
    [
        eval,  # builtins.eval
        getattr,  # the usual way to reach any attribute
        np.load,  # a numpy function outside the allow-list
        pickle.Unpickler,
    ],
)
def test_other_globals_are_refused(tmp_path, obj):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps([obj]))
    with pytest.raises(DataError, match=rf"not loaded.*{obj.__name__}"):
        safe_load(path)


def test_codecs_encode_only_for_latin1(tmp_path):
    # protocol 2 writes bytes as _codecs.encode(text, "latin1"); any other codec is refused
    good = pickle.dumps(b"\xff\x00ab", protocol=2)
    bad = good.replace(b"latin1", b"utf-16")  # same length: only the codec name differs
    (tmp_path / "good").write_bytes(good)
    (tmp_path / "bad").write_bytes(bad)
    assert safe_load(tmp_path / "good") == b"\xff\x00ab"
    with pytest.raises(DataError, match="not a readable"):
        safe_load(tmp_path / "bad")


def test_truncated_and_non_pickle_files_are_data_errors(tmp_path):
    whole = pickle.dumps(_batch(), protocol=2)
    cases = {"truncated": whole[: len(whole) // 2], "empty": b"", "text": b"hello, world\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match=rf"{name}: not a readable"):
            safe_load(tmp_path / name, encoding="bytes")
