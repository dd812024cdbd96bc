"""The image domain: exact uint8 round trip, clipping only in decode, grids, npz files."""

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from genmodels.domains import images as dom


def all_bytes() -> np.ndarray:
    """Every uint8 value once, as 4 images of 8 x 8 x 1."""
    return np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1)


def test_encode_decode_round_trip_is_exact_for_every_byte():
    u = all_bytes()
    state, ctx = dom.encode(u)
    x = state["image"]
    assert ctx == {} and x.dtype == np.float32 and x.shape == u.shape
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_allclose(x.ravel(), np.arange(256) / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_array_equal(dom.decode(state), u)
    # on the device (inside a training step) and for [N, H, W] gray-scale input
    jx = dom.encode(jnp.asarray(u[..., 0]))[0]["image"]
    assert jx.shape == u.shape
    np.testing.assert_array_equal(dom.decode({"image": jx}), u)


def test_decode_rounds_and_clips_and_constrain_is_identity():
    x = np.array([-3.0, -1.0, -1.0 + 0.4 / 127.5, -1.0 + 0.6 / 127.5, 0.0, 1.0, 7.0, np.nan])
    got = dom.decode({"image": x.reshape(1, 8, 1, 1)}).ravel()
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 128, 255, 255, 128])
    state = {"image": jnp.full((2, 3, 3, 1), 5.0)}
    assert dom.constrain(state, {}) is state  # samplers never clip mid-trajectory


def test_encode_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        dom.encode(np.zeros((2, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="shape"):
        dom.encode(np.zeros((4, 4), np.uint8))


def test_image_grid_layout():
    x = np.stack([np.full((2, 3, 1), v, np.uint8) for v in (10, 20, 30)])  # 3 images 2 x 3
    g = dom.image_grid(x, nrow=2)
    assert g.shape == (4, 6, 1)
    np.testing.assert_array_equal(g[:2, :3, 0], 10)
    np.testing.assert_array_equal(g[:2, 3:, 0], 20)
    np.testing.assert_array_equal(g[2:, :3, 0], 30)
    np.testing.assert_array_equal(g[2:, 3:, 0], 0)  # empty cell
    p = dom.image_grid(x, nrow=3, padding=1)
    assert p.shape == (1 + 2 + 1, 1 + 3 * (3 + 1), 1)
    assert p[0].max() == 0 and p[1, 1, 0] == 10 and p[1, 5, 0] == 20


@pytest.mark.parametrize("channels", [1, 3])
def test_npz_round_trip_and_png_grid(tmp_path, channels):
    rng = np.random.default_rng(channels)
    x = rng.integers(0, 256, (12, 5, 4, channels), dtype=np.uint8)
    path = tmp_path / "s.npz"
    png = dom.write_images_npz(path, x, nrow=5)
    assert png == tmp_path / "s.png" and png.exists()
    np.testing.assert_array_equal(dom.read_images_npz(path), x)
    with np.load(path) as f:
        assert list(f.files) == ["images"] and f["images"].dtype == np.uint8
    grid = np.asarray(Image.open(png))
    want = dom.image_grid(x, nrow=5)
    np.testing.assert_array_equal(grid.reshape(want.shape), want)


def test_bad_sample_files_give_errors_that_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        dom.read_images_npz(tmp_path / "nope.npz")
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match=r"text\.npz.*uint8 'images' \[N, H, W, C\]"):
        dom.read_images_npz(text)
    other = tmp_path / "other.npz"
    np.savez(other, samples=np.zeros((2, 4, 4, 1), np.uint8))
    with pytest.raises(ValueError, match=r"other\.npz: no 'images'.*samples"):
        dom.read_images_npz(other)
    floats = tmp_path / "floats.npz"
    np.savez(floats, images=np.zeros((2, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"floats\.npz.*float32.*expected uint8 \[N, H, W, C\]"):
        dom.read_images_npz(floats)
    flat = tmp_path / "flat.npz"
    np.savez(flat, images=np.zeros((2, 16), np.uint8))
    with pytest.raises(ValueError, match=r"flat\.npz.*\(2, 16\)"):
        dom.read_images_npz(flat)
    bare = tmp_path / "bare.npy"
    np.save(bare, np.zeros((2, 4, 4, 1), np.uint8))
    with pytest.raises(ValueError, match=r"bare\.npy.*\.npz archive"):
        dom.read_images_npz(bare)
    with pytest.raises(ValueError, match="uint8"):
        dom.write_images_npz(tmp_path / "w.npz", np.zeros((2, 4, 4, 1), np.float32))
