"""Masked diffusion + first-hitting sampler on community_small (one token per node pair).

Method: :mod:`genmodels.models.mdm_graphs` (:class:`MDMGraphs`). Each graph is the leaf
``edges`` [B, 190] of its node pairs ``i < j`` (20 padded nodes) in {no edge, edge},
absorbing-state diffusion with the linear schedule ``alpha = 1 - t``, trained on the
continuous-time NELBO of MDLM (Sahoo et al. 2024) / MD4 (Shi et al. 2024) with antithetic
times in [1e-3, 1] and no time conditioning; samples come from the first-hitting sampler
of Zheng et al. 2024 (one network call per real pair, ``n (n - 1) / 2`` for ``n`` nodes,
float64-grade categorical draws). Data, splits (the first 20% of the file: 20 test
graphs, 80 training graphs), node counts drawn from the training graphs, decoding
(threshold 0.5, isolated nodes dropped), ``.g6`` files and the MMD suite (degree,
clustering, orbit, spectral) are GDSS's (Jo, Lee, Hwang, ICML 2022;
``gdss_community_small``).

Network: a DiGress-style dense graph transformer (:mod:`genmodels.nets.graph_transformer`)
sized for 2 CPU cores as ``mdm_qm9``'s: 4 layers, d_x 64, d_e 32, 4 heads, FFN widths
128 / 64 (0.19M parameters; DiGress uses 9 layers of d_x 256). A node's token is its
number of revealed edges in the noisy graph (GDSS ignores node features for generic
graphs; identical node tokens would leave the attention unable to tell nodes apart, and
a first run with them learned only the edge density); the node count enters through
the transformer's size embedding.

Budget: 2,000 steps of batch 80 (every training graph in each step, so 2,000 epochs;
GDSS trains 5,000; training time in ``benchmarks/results/recipes.md``); Adam lr 1e-3
without weight decay (MDLM: AdamW 3e-4, 2,500 warm-up steps), 100 warm-up steps and a
cosine decay to 1e-4, clipping at 1 (MDLM), EMA 0.999 (MDLM's 0.9999 averages over too
many of 2,000 steps), sampling with the EMA parameters.
"""

from _mdm import mdm

from genmodels.models.mdm_graphs import MDMGraphConfig
from genmodels.nets.graph_transformer import GraphTransformerConfig


def config() -> MDMGraphConfig:
    return mdm(
        MDMGraphConfig,
        dataset="community_small",
        net=GraphTransformerConfig(dx=64, de=32, heads=4, layers=4, ffn_x=128, ffn_e=64),
        sample_batch=128,
        steps=2000,
        batch_size=80,
        warmup_steps=100,
    )
