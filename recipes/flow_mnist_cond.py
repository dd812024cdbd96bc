"""Class-conditional rectified flow on MNIST with classifier-free guidance (CPU-sized).

``flow_mnist``'s setup (the 0.32M-parameter DDPM++ UNet, rectified-flow path and time
label, batch 64, lr 1e-3 with warm-up and cosine decay, EMA 0.995, 20 Euler steps) with
the digit as a condition: the UNet's label embedding (EDM's ``map_label``, one-hot times
sqrt(10)) is added to its noise embedding, and training replaces an example's label by the
all-zero null label with probability 0.1 (Ho & Salimans 2022, "Classifier-free diffusion
guidance": p_uncond 0.1 or 0.2), so one network is both the conditional and the
unconditional model. Sampling: ``genmodels sample flow_mnist_cond --label 3 --guidance
2.0`` (velocity ``v_u + w (v_c - v_u)``, one call per step on the doubled batch);
``genmodels evaluate`` reports ``class_accuracy`` (the shipped MNIST classifier) next to
the FIDs. Longer than ``flow_mnist`` (1,200 steps instead of 900): the label adds a task.
"""

from _continuous import RECTIFIED_FLOW, mnist_cpu

from genmodels.models.flow import FlowImageConfig


def config() -> FlowImageConfig:
    return mnist_cpu(
        FlowImageConfig,
        classes=10,
        p_uncond=0.1,
        random_flip=False,
        **RECTIFIED_FLOW,
        sampler="euler",
        sample_steps=20,
        sample_batch=250,
        steps=1200,
        ckpt_every=300,
    )
