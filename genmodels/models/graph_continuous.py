"""GDSS's graph state for the continuous methods (PFGM++, flow matching + BOSS).

Recipes ``pfgmpp_qm9``, ``flow_qm9``, ``pfgmpp_community_small``, ``flow_community_small``
run :class:`~genmodels.models.pfgmpp.PFGMPPMethod` / :class:`~genmodels.models.flow.FlowMethod`
on GDSS's dense state (Jo, Lee, Hwang, ICML 2022): ``x`` [B, N, F] one-hot, ``adj``
[B, N, N]; the data set picks the task (:class:`MoleculeTask` or :class:`GraphTask`).
Both leaves share one noise level per graph; the adjacency noise lives on the strict upper
triangle of real pairs, mirrored (:func:`genmodels.domains.graphs.corrupt_graph`), so a
PFGM++ kernel has ``N_x = n F`` and ``N_adj = n (n - 1) / 2``. The network is GDSS's two
networks with the noise label as an extra node channel
(:class:`~genmodels.nets.graph.GraphFieldNet`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from genmodels.datasets.registry import dataset_kind
from genmodels.datasets.user import UserData
from genmodels.domains.graphs import corrupt_graph
from genmodels.models.tasks.graphs import GraphTask
from genmodels.models.tasks.molecules import MoleculeTask, molecule_net
from genmodels.nets.graph import GDSS_NET_CONFIGS, GDSSNetConfig
from genmodels.train.config import OptimConfig, TrainConfig


@dataclass(frozen=True)
class GraphTaskConfig:
    """Fields of every continuous recipe on the GDSS graph state (each method adds its own).

    Attributes:
      dataset: qm9, zinc250k, moses, a SMILES file (molecules) or community_small,
        ego_small, ENZYMES, grid (generic graphs); ``data``: a file's options.
      index_offset: molecules: how the split file's ids map to rows (data/README.md).
      eval_fcd, eval_nspdk: molecules: compute FCD (``metrics`` extra) and NSPDK.
      moses_limit: MOSES training molecules to load (``None``: all).
      net: GDSS network sizes (``max_feat_num`` = atom types or degree classes,
        ``max_node_num`` = atoms or nodes).
      time_input: append the noise label to the node features.
      sampler: default sampler (a registry name).
      sample_steps: default number of steps.
      sample_use_ema: sample with the EMA parameters.
      sample_batch: graphs per jitted sampling round.
    """

    dataset: str = "qm9"
    data: UserData = UserData()  # options of a user data file (``--dataset PATH``)
    index_offset: int = 1
    eval_fcd: bool = True
    eval_nspdk: bool = True
    moses_limit: int | None = None
    net: GDSSNetConfig = field(default_factory=lambda: GDSS_NET_CONFIGS["QM9"])
    time_input: bool = True
    sampler: str = ""
    sample_steps: int = 18
    sample_use_ema: bool = True
    sample_batch: int = 1024
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    #: the training noise: symmetric on ``adj``, on real entries only (module docstring)
    corrupt: ClassVar = staticmethod(corrupt_graph)
    #: every round samples ``sample_batch`` graphs, as GDSS (the first ``num`` of a run
    #: then do not depend on ``num``)
    whole_batches: ClassVar[bool] = True

    @property
    def graph_net(self) -> GDSSNetConfig:
        """``net``, sized by a molecule file's atom types (:func:`molecule_net`)."""
        return molecule_net(self.net, self.dataset, self.data)

    def task(self) -> GraphTask | MoleculeTask:
        if dataset_kind(self.dataset) == "molecules":
            return MoleculeTask.of(self)
        return GraphTask(self.dataset, self.net.max_node_num, self.net.max_feat_num, self.data)


def __getattr__(name: str):
    # the recipes import their configs from here
    if name == "GraphPFGMPPConfig":
        from genmodels.models.pfgmpp import GraphPFGMPPConfig

        return GraphPFGMPPConfig
    if name == "GraphFlowConfig":
        from genmodels.models.flow import GraphFlowConfig

        return GraphFlowConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
