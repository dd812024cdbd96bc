"""Dataset registry: canonical URLs, checksums, licences and local layout.

Every file a loader reads is resolved through :func:`fetch`, which looks under
``$GENMODELS_DATA_DIR`` (default ``./data``), verifies its sha256 when one is pinned,
and otherwise downloads it from the canonical URL with a progress bar. A missing or
corrupt file gives an error that names the file, the expected checksum and where to put
it. Downloads can be disabled with ``GENMODELS_OFFLINE=1`` (the test suite does).

Preprocessed caches never go into the data folder (it may be read-only): they live under
:func:`cache_dir` (``$GENMODELS_CACHE_DIR``, default ``~/.cache/genmodels``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from genmodels.errors import GenmodelsError


class DatasetError(GenmodelsError, RuntimeError):
    """A dataset file is missing, corrupt or unreadable; the message says how to fix it."""


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    Args:
      path: location relative to the data directory (e.g. ``graphs/grid.pkl``).
      url: canonical download URL.
      sha256: expected checksum, or ``None`` where no pinned copy was available to hash
        (then only presence is checked, and the card says so).
    """

    path: str
    url: str
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetCard:
    """What a dataset is, where it comes from and under which terms."""

    name: str
    files: tuple[FileSpec, ...]
    licence: str
    citation: str
    description: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: the data kind a task reads it as (``molecules``; ``""``: its name's own loader)
    kind: str = ""

    def file(self, path: str) -> FileSpec:
        for f in self.files:
            if f.path == path or f.path.endswith("/" + path):
                return f
        raise KeyError(f"dataset {self.name!r} has no file {path!r}; files: {self.paths()}")

    def paths(self) -> list[str]:
        return [f.path for f in self.files]


_GDSS = "https://raw.githubusercontent.com/harryjo97/GDSS/master/data/"
_CDVAE = "https://raw.githubusercontent.com/txie-93/cdvae/main/data/"
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_MOSES = "https://media.githubusercontent.com/media/molecularsets/moses/master/data/"

REGISTRY: dict[str, DatasetCard] = {}


def register(card: DatasetCard) -> DatasetCard:
    """Add ``card`` to the registry (names are unique)."""
    if card.name in REGISTRY:
        raise ValueError(f"dataset {card.name!r} registered twice")
    REGISTRY[card.name] = card
    return card


_GDSS_CITE = (
    "Jo, Lee, Hwang. Score-based Generative Modeling of Graphs via the System of SDEs. ICML 2022."
)
for _name, _sha, _desc in [
    (
        "community_small",
        "ee0390de8ca9855e40b3a81cf0a84bfd0114a9a42ace369eb08a925e4d988157",
        "100 two-community graphs, 12-20 nodes (GDSS generator).",
    ),
    (
        "ego_small",
        "eb1af8c3094929748a67b75c4f33ad364c1361d711c0fe14fa8c4d1681918dba",
        "200 Citeseer 1-hop ego graphs, 4-17 nodes.",
    ),
    (
        "grid",
        "1c533398435301faaa1282993e1738069cafcc5e7662b284a3dba23cee680104",
        "100 2-D grid graphs, 110-361 nodes.",
    ),
    (
        "ENZYMES",
        "d1fb37bd6322be1e7ee5e324672003b2b24b9b2e496d047a42e8f5a404cde110",
        "587 protein graphs (TU Dortmund ENZYMES), 10-125 nodes.",
    ),
]:
    register(
        DatasetCard(
            name=_name,
            files=(FileSpec(f"graphs/{_name}.pkl", _GDSS + f"{_name}.pkl", _sha),),
            licence="research-use reference data (GDSS repository states no licence)",
            citation=_GDSS_CITE,
            description=_desc,
            notes=(
                "A pickle of networkx graphs: pickles run code when loaded, so only load "
                "files from a trusted source whose checksum matches.",
                "Test split = the first 20% of the list, as the GDSS reference does.",
            ),
        )
    )

register(
    DatasetCard(
        name="qm9",
        kind="molecules",
        files=(
            FileSpec(
                "graphs/DIG/qm9.csv",
                "https://raw.githubusercontent.com/divelab/DIG/3d52cf1140b8b4290ff9b69aa0f86da6eaec2d66/dig/ggraph/datasets/qm9.csv",
                "ce39edf4c35fa6cdf7d7db36fd4a38742e67e2475d9b765804ea077d8a847c2c",
            ),
            FileSpec(
                "graphs/valid_idx_qm9.json",
                _GDSS + "valid_idx_qm9.json",
                "889fd232a33d8a2c00f057c807b119e72abd5baa48f6fab93e8d8b7a79340f4d",
            ),
        ),
        licence="GPL-3.0 (DIG csv); MIT (MoFlow split file)",
        citation="Ramakrishnan et al. Quantum chemistry structures and properties of 134k molecules. Sci. Data 2014.",
        description="133,885 GDB-9 molecules (SMILES), with the MoFlow/GDSS test split.",
    )
)
register(
    DatasetCard(
        name="zinc250k",
        kind="molecules",
        files=(
            FileSpec(
                "graphs/zinc250k.csv",
                "https://raw.githubusercontent.com/aspuru-guzik-group/chemical_vae/master/models/zinc_properties/250k_rndm_zinc_drugs_clean_3.csv",
                None,
            ),
            FileSpec(
                "graphs/valid_idx_zinc250k.json",
                _GDSS + "valid_idx_zinc250k.json",
                "cf1af3a8588c947493ff0a2b60178db6726e9a4dbb445235b149cd3bbe6831df",
            ),
        ),
        licence="see the ZINC terms of use; MIT (MoFlow split file)",
        citation="Irwin et al. ZINC: a free tool to discover chemistry for biology. 2012.",
        description="249,455 drug-like molecules with logP, QED, SAS.",
        notes=("No pinned copy was available to hash: only presence is checked.",),
    )
)
register(
    DatasetCard(
        name="moses",
        kind="molecules",
        files=(
            FileSpec(
                "graphs/moses/train.csv.gz",
                _MOSES + "train.csv.gz",
                "786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c",
            ),
            FileSpec(
                "graphs/moses/test.csv.gz",
                _MOSES + "test.csv.gz",
                "f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2",
            ),
            FileSpec(
                "graphs/moses/test_scaffolds.csv.gz",
                _MOSES + "test_scaffolds.csv.gz",
                "adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde",
            ),
            FileSpec(
                "graphs/moses/test_stats.npz",
                _MOSES + "test_stats.npz",
                "ded25073225a895d4ed17bf1d4223d27560e87ff4cb85786346ca1cc8efa03d3",
            ),
        ),
        licence="MIT (molsets 0.3.1)",
        citation="Polykovskiy et al. Molecular Sets (MOSES). Front. Pharmacol. 2020.",
        description="MOSES benchmark: 1.58M training molecules, test and scaffold test sets.",
    )
)
_CDVAE_CITE = (
    "Xie, Fu, Ganea, Barzilay, Jaakkola. Crystal Diffusion Variational Autoencoder. ICLR 2022."
)
for _name, _shas in [
    (
        "perov_5",
        {
            "val": "326f401219901270374b71e2faff63df3a29a99fd26f469993b9f476b693daf2",
            "test": "a85878c685037f0a578257f6d4fcdde00e968dbab73c5f1e90ecef65218513f6",
        },
    ),
    (
        "carbon_24",
        {
            "val": "36c00689cd63073c954a58bc6ed6e2adb7aeed5a630c994970959a1babffd50e",
            "test": "386b17c08816f434818d51e46687bf72ff3f92348f3ba24823e4758f1fe8a969",
        },
    ),
    ("mp_20", {}),
]:
    register(
        DatasetCard(
            name=_name,
            files=tuple(
                FileSpec(f"crystals/{_name}/{s}.csv", _CDVAE + f"{_name}/{s}.csv", _shas.get(s))
                for s in ("train", "val", "test")
            ),
            licence="MIT (CDVAE repository); cite the original data sources",
            citation=_CDVAE_CITE,
            description=f"CDVAE benchmark {_name}: csv with a P1 `cif` column per crystal.",
        )
    )
register(
    DatasetCard(
        name="mnist",
        files=tuple(
            FileSpec(f"images/mnist/{f}", _MNIST + f, s)
            for f, s in [
                (
                    "train-images-idx3-ubyte.gz",
                    "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    "ec02e7948609e5754d47881c09b8afdd8dfa60600b9e5388c8c54a67069ec772",
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b",
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c",
                ),
            ]
        ),
        licence="MNIST terms of LeCun, Cortes and Burges",
        citation="LeCun, Bottou, Bengio, Haffner. Gradient-based learning applied to document recognition. 1998.",
        description="70,000 28x28 handwritten digits (IDX, gzip).",
        notes=("The gzip wrappers differ from other mirrors: compare uncompressed content.",),
    )
)

_CIFAR10 = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
register(
    DatasetCard(
        name="cifar10",
        files=(
            FileSpec(
                "cifar10/cifar-10-python.tar.gz",
                _CIFAR10,
                "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            ),
        ),
        licence="no licence stated; the CIFAR page asks users to cite the technical report",
        citation="Krizhevsky. Learning multiple layers of features from tiny images. Tech. report, U. Toronto, 2009.",
        description="60,000 32x32 colour images in 10 classes (50,000 train, 10,000 test), "
        "python pickle batches.",
        notes=(
            "Loaders read the extracted folder cifar10/cifar-10-batches-py (data_batch_1..5, "
            "test_batch); when it is absent the archive above is fetched and extracted.",
            "The batches are Python pickles, and the extracted files are not checksummed: "
            "they are read with a restricted unpickler (genmodels.datasets.safe_pickle) that "
            "builds only arrays, lists and strings, so a crafted batch is refused instead of "
            "running code. The archive's checksum is pinned.",
        ),
    )
)


def dataset_kind(name: str) -> str:
    """The registered data kind of ``name`` (``molecules`` for QM9, ZINC250k and MOSES;
    ``""`` for any other name, e.g. generic graphs); a user's path: the kind of its file
    (:func:`genmodels.datasets.user.user_data_kind`)."""
    from genmodels.datasets.user import is_user_path, user_data_kind

    if is_user_path(name):
        return user_data_kind(name)
    card = REGISTRY.get(name)
    return card.kind if card is not None else ""


def data_dir() -> Path:
    """``$GENMODELS_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get("GENMODELS_DATA_DIR", "data")).expanduser()


def cache_dir() -> Path:
    """``$GENMODELS_CACHE_DIR`` or ``~/.cache/genmodels`` (created on demand)."""
    p = Path(os.environ.get("GENMODELS_CACHE_DIR", "~/.cache/genmodels")).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _offline() -> bool:
    return os.environ.get("GENMODELS_OFFLINE", "0") not in ("", "0", "false", "False")


def download(url: str, dest: Path, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically with a progress bar, checking ``sha256``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                while block := resp.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
        if sha256 is not None and (got := sha256sum(Path(tmp))) != sha256:
            raise DatasetError(f"download of {url} has sha256 {got}, expected {sha256}")
        shutil.move(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def fetch(name: str, path: str, *, download_missing: bool = True, verify: bool = True) -> Path:
    """Local path of one file of dataset ``name``, verified (and downloaded if missing).

    Args:
      name: a registered dataset (see :data:`REGISTRY`).
      path: the file, as in the card (``graphs/grid.pkl``) or its last part (``grid.pkl``).
      download_missing: download a missing file unless ``GENMODELS_OFFLINE`` is set.
      verify: check the sha256 when the card pins one.

    Returns:
      The path of the file under :func:`data_dir`.

    Raises:
      DatasetError: unknown dataset, missing file (offline) or checksum mismatch; the
        message names the file, the expected location and the checksum.
    """
    if name not in REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    spec = REGISTRY[name].file(path)
    local = data_dir() / spec.path
    if not local.exists():
        if not download_missing or _offline():
            raise DatasetError(
                f"{name}: file {local} is missing. Download it from {spec.url} "
                f"(sha256 {spec.sha256 or 'not pinned'}) and put it at {local}, or set "
                "GENMODELS_DATA_DIR to a folder that has it."
            )
        try:
            download(spec.url, local, spec.sha256)
        except (OSError, DatasetError) as e:
            raise DatasetError(
                f"{name}: could not download {spec.url} to {local}: {e}. Put the file there by hand."
            ) from e
    if verify and spec.sha256 is not None:
        got = sha256sum(local)
        if got != spec.sha256:
            raise DatasetError(
                f"{name}: {local} is corrupt or a different version: sha256 {got}, expected "
                f"{spec.sha256}. Delete it and download it again from {spec.url}."
            )
    return local
