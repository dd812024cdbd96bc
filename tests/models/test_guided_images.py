"""Class-conditional image recipes with classifier-free guidance, end to end.

A tiny ``flow_mnist_cond`` UNet is trained 2 steps through ``genmodels train`` (labels
from MNIST, dropped with p_uncond), sampled with ``--label 3 --guidance 2.0`` and
evaluated: ``class_accuracy`` must equal the shipped classifier's hand-computed accuracy
on the written images. The EDM recipe shares the code path; its network's use of the
label is checked directly.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genmodels.cli import main
from genmodels.datasets.images import load_mnist
from genmodels.metrics.images import classifier_accuracy
from genmodels.models.run import read_sidecar
from genmodels.samplers.guidance import KEEP, condition_context

from .test_image_methods import fast_jit, net_flags, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("flow_mnist_cond")
    args = ["train", "flow_mnist_cond", "--workdir", str(work), "--train.steps", "2"]
    args += ["--train.batch-size", "8", "--train.progress", "False"]
    assert main(args + net_flags("")) == 0
    return work


def test_training_reads_the_labels_and_drops_them_with_p_uncond():
    cfg = tiny_config("flow_mnist_cond")
    task = cfg.build().task
    arrays = task.train_arrays()
    np.testing.assert_array_equal(arrays["label"], load_mnist("train")[1])
    batch = {k: v[:4000] for k, v in arrays.items()}
    _, ctx = task.dense_batch(batch, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(ctx["cond"], arrays["label"][:4000])
    assert abs(float(ctx[KEEP].mean()) - (1 - cfg.condition.p_uncond)) < 0.02
    _, ctx = task.dense_batch(batch)  # no key: nothing dropped (evaluation)
    assert float(ctx[KEEP].min()) == 1.0


@pytest.mark.parametrize("recipe", ["flow_mnist_cond", "edm_mnist_cond"])
def test_the_network_reads_the_label_and_keep_zero_is_the_null_label(recipe):
    cfg = tiny_config(recipe)
    net = cfg.build().init_model(jax.random.PRNGKey(0))
    # EDM's UNet starts with a zero output layer: jitter every parameter so it reads x
    graphdef, params = nnx.split(net)
    keys = iter(jax.random.split(jax.random.PRNGKey(2), len(jax.tree.leaves(params))))
    params = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(next(keys), p.shape), params)
    net = nnx.merge(graphdef, params)
    x = {"image": jax.random.normal(jax.random.PRNGKey(1), (2, 28, 28, 1))}
    t = jnp.array([0.5, 0.5])

    def out(net, ctx):
        return fast_jit(lambda n, c: n(x, t, c)["image"])(net, ctx)

    a = out(net, condition_context({}, jnp.array([3, 3])))
    b = out(net, condition_context({}, jnp.array([5, 5])))
    null = out(net, condition_context({}, jnp.array([3, 5]), 0.0))
    assert float(jnp.abs(a - b).max()) > 1e-4
    np.testing.assert_allclose(null, out(net, {}), atol=1e-6)


def test_guided_samples_and_their_class_accuracy_through_the_cli(run, tmp_path, capsys):
    out = tmp_path / "g.npz"
    args = ["sample", "flow_mnist_cond", "--checkpoint", str(run), "--num", "8", "--steps", "2"]
    assert main(args + ["--out", str(out), "--label", "3", "--guidance", "2.0"]) == 0
    meta = read_sidecar(out)
    assert meta["label"] == 3 and meta["guidance"] == 2.0
    capsys.readouterr()
    assert main(["evaluate", "flow_mnist_cond", "--samples", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    images = np.load(out)["images"]
    assert metrics["class_accuracy"] == classifier_accuracy(images, np.full(len(images), 3))


@pytest.mark.parametrize(
    "extra, words",
    [
        (["flow_mnist", "--label", "3"], ("not class-conditional", "flow_mnist_cond")),
        (["flow_mnist_cond", "--guidance", "2"], ("--guidance needs --label",)),
        (["flow_mnist_cond", "--label", "10"], ("--label must be in [0, 10)",)),
    ],
)
def test_bad_condition_options_are_one_line_usage_errors(extra, words, tmp_path, capsys):
    assert main(["sample", *extra, "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
