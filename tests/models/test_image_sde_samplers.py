"""EDM (PFGM++ with D = inf) sampled with the shared predictor-corrector and S4 samplers.

Closed form: for data on two weighted points the EDM denoiser is exact
(:func:`genmodels.processes.pfgmpp.exact_denoiser`), so the score
``(D(x; sigma) - x) / sigma^2`` is the true score of the perturbed data and the samplers
must put their samples on the two points, in proportion to the weights.

Tolerances. Both samplers stop at the grid's last noise level ``sigma(1e-3) ~ sigma_min
= 0.002``. ``pc`` returns the last reverse-diffusion mean, which is the denoised value
(distance ~1e-4 here); ``s4`` returns a state that still carries noise of about
``sigma_min`` per pixel (its last step is the short one from ``t = eps`` to 0). The
per-pixel RMS distance to the nearest point is therefore bounded by ``3 sigma_min``: for
N(0, sigma_min^2) noise in 16 pixels, exceeding it needs chi^2_16 > 144, probability
~1e-22. The weights (1/4, 3/4) are checked on 256 samples within +-0.12 (4.4 binomial
standard deviations).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genmodels.cli import main
from genmodels.models.pfgmpp import PFGMPPImageConfig
from genmodels.nets.unet import UNetConfig
from genmodels.processes.pfgmpp import PFGMPP, exact_denoiser
from genmodels.samplers.registry import run_sampler

INF = float("inf")
SDE_SAMPLERS = ("pc", "s4")  # the registry's score-SDE samplers of EDM
SIGMA_MIN = 0.002
# two 4 x 4 gray images on uint8 levels (k / 127.5 - 1): flat 64 and a 191/32 checkerboard
_CHECKER = np.indices((4, 4)).sum(0)[..., None] % 2 == 0
POINTS = (
    np.stack([np.full((4, 4, 1), 64), np.where(_CHECKER, 191, 32)]).astype(np.float32) / 127.5 - 1
)  # [2, 4, 4, 1]
WEIGHTS = np.array([0.25, 0.75], np.float32)


def nearest(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest point and the per-pixel RMS distance to it, per sample."""
    flat = x.reshape(x.shape[0], -1)  # [B, 16]
    d = np.linalg.norm(flat[:, None] - POINTS.reshape(2, -1)[None], axis=-1)  # [B, 2]
    return d.argmin(1), d.min(1) / math.sqrt(flat.shape[1])


@pytest.mark.parametrize("sampler", SDE_SAMPLERS)
def test_exact_denoiser_samples_land_on_the_data_points(sampler):
    proc = PFGMPP(D=INF, sigma_min=SIGMA_MIN, sigma_max=80.0)
    den = exact_denoiser(POINTS, WEIGHTS, INF)
    steps, batch = 100, 256

    @jax.jit
    def run(key):
        return run_sampler(
            sampler,
            lambda st, sigma, ctx: {"image": den(st["image"], sigma)},
            {"image": proc},
            {},
            key,
            shapes={"image": (batch, 4, 4, 1)},
            steps=steps,
            constrain=lambda st, ctx: st,
        )

    out, info = run(jax.random.PRNGKey(0))
    assert int(info["nfe"]) == (2 * steps if sampler == "pc" else steps)
    idx, dist = nearest(np.asarray(out["image"]))
    assert dist.max() < 3 * SIGMA_MIN, (sampler, np.sort(dist)[-5:])
    if sampler == "pc":  # the denoised mean, not a noisy state
        assert np.median(dist) < 0.1 * SIGMA_MIN
    assert abs(idx.mean() - WEIGHTS[1]) < 0.12, idx.mean()


class ExactNet(nnx.Module):
    """The exact denoiser of ``POINTS`` as a network ``(state, sigma, ctx) -> state``."""

    def __init__(self):
        self.points = nnx.Param(jnp.asarray(POINTS))

    def __call__(self, state, sigma, ctx=None):
        fn = exact_denoiser(self.points.get_value(), WEIGHTS, INF)
        return {"image": fn(state["image"], sigma)}


def exact_method(D: float = INF, sampler: str = "heun"):
    net = UNetConfig(in_channels=1, out_channels=1, img_resolution=4)
    cfg = PFGMPPImageConfig(net=net, D=D, sigma_min=SIGMA_MIN, sampler=sampler, sample_batch=8)
    return cfg.build()


@pytest.mark.parametrize("sampler", SDE_SAMPLERS)
def test_image_method_reports_nfe_and_decodes_the_points(sampler):
    method = exact_method()
    assert method.samplers == ("heun", "euler", "ode", "pc", "s4")
    x, nfe = method.sample(
        ExactNet(), jax.random.PRNGKey(1), 12, sampler=sampler, steps=30, return_nfe=True,
        progress=False,
    )  # fmt: skip
    assert nfe == {"pc": 60, "s4": 30}[sampler]
    assert x.shape == (12, 4, 4, 1) and x.dtype == np.uint8
    want = np.round((POINTS + 1) * 127.5).astype(np.int64)  # [2, 4, 4, 1]
    diff = np.abs(x[:, None].astype(np.int64) - want[None]).max(axis=(2, 3, 4))  # [12, 2]
    assert np.all(diff.min(1) <= 1), diff  # every image is a data point up to 1 level


def test_finite_D_refuses_the_sde_samplers():
    with pytest.raises(ValueError, match="only for D = inf"):
        run_sampler(
            "pc",
            lambda st, s, c: st,
            {"image": PFGMPP(D=128.0)},
            {},
            jax.random.PRNGKey(0),
            shapes={"image": (2, 4, 4, 1)},
            steps=3,
            constrain=lambda st, ctx: st,
        )
    method = exact_method(D=128.0)
    for sampler in SDE_SAMPLERS:
        with pytest.raises(ValueError, match=f"sampler '{sampler}'.*only for D = inf"):
            method.sample(ExactNet(), jax.random.PRNGKey(0), 2, sampler=sampler, steps=3)


def test_edm_mnist_recipe():
    from genmodels.recipes import load_recipe

    cfg, _ = load_recipe("edm_mnist")
    pf, _ = load_recipe("pfgmpp_mnist")
    assert math.isinf(cfg.D) and cfg.sampler == "pc" and cfg.net == pf.net
    assert cfg.train == pf.train and cfg.optim == pf.optim
    assert cfg.build().samplers == ("pc", "euler", "heun", "ode", "s4")


TINY_NET = ["--model-channels", "8", "--channel-mult", "1", "--num-blocks", "1"]


def net_flags(prefix: str) -> list[str]:
    flags = [f"--{prefix}net.{a[2:]}" if a.startswith("--") else a for a in TINY_NET]
    return flags + [f"--{prefix}net.attn-resolutions"]


@pytest.mark.slow
def test_cli_samples_edm_mnist_with_s4(tmp_path):
    """``genmodels train edm_mnist`` for 3 steps, then ``genmodels sample edm_mnist
    --sampler s4 --steps 5 --num 16`` writes the npz and its PNG grid."""
    work = tmp_path / "run"
    args = ["train", "edm_mnist", "--workdir", str(work), "--train.steps", "3"]
    args += ["--train.batch-size", "8", "--train.log-every", "1", "--train.progress", "False"]
    assert main(args + net_flags("")) == 0
    out = tmp_path / "s.npz"
    args = ["sample", "edm_mnist", "--checkpoint", str(work), "--num", "16", "--out", str(out)]
    assert main(args + ["--sampler", "s4", "--steps", "5", *net_flags("config.")]) == 0
    assert out.exists() and out.with_suffix(".png").exists()
    with np.load(out) as f:
        assert f["images"].shape == (16, 28, 28, 1) and f["images"].dtype == np.uint8
