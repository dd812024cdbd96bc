"""Fixtures shared by the molecule model tests."""

import pytest

# the first 28 molecules of QM9 (canonical SMILES), a stand-in for the full data set
QM9_HEAD = [
    "C", "N", "O", "C#C", "C#N", "C=O", "CC", "CO", "CC#C", "CC#N", "CC=O", "NC=O", "CCC",
    "CCO", "COC", "C1CC1", "C1CO1", "CC(C)=O", "CC(N)=O", "NC(N)=O", "OC=O", "CC(=O)O",
    "CCCO", "CC(C)O", "OCCO", "c1ccoc1", "c1ccncc1", "FC(F)F",
]  # fmt: skip


@pytest.fixture(scope="module")
def mini_data(tmp_path_factory):
    """A QM9-like :class:`~genmodels.datasets.molecules.MoleculeDataset` of 28 molecules
    (test rows 3, 9 and 17), cached in a temporary folder."""
    from genmodels.datasets.molecules import load_molecule_csv
    from genmodels.domains.molecules import QM9_ATOMS, MoleculeDomain

    tmp = tmp_path_factory.mktemp("mini_qm9")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENMODELS_CACHE_DIR", str(tmp / "cache"))
        csv = tmp / "mini.csv"
        csv.write_text("smiles\n" + "\n".join(QM9_HEAD) + "\n")
        return load_molecule_csv(
            csv, MoleculeDomain(QM9_ATOMS, 9), name="mini", test_ids=[3, 9, 17]
        )
