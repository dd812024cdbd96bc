"""The dataset registry: every card is complete, files verify, errors say how to fix them."""

import hashlib

import pytest

from genmodels.datasets.registry import REGISTRY, DatasetError, fetch, sha256sum


def test_every_card_has_url_licence_citation_and_layout():
    assert {
        "community_small",
        "ego_small",
        "grid",
        "ENZYMES",
        "qm9",
        "zinc250k",
        "moses",
        "perov_5",
        "carbon_24",
        "mp_20",
        "mnist",
    } <= set(REGISTRY)
    for card in REGISTRY.values():
        assert card.licence and card.citation and card.files
        for f in card.files:
            assert f.url.startswith("https://") and "/" in f.path
            assert f.sha256 is None or len(f.sha256) == 64


def test_shared_files_match_their_pinned_checksums():
    # every pinned file present in the data folder verifies (nothing is downloaded)
    n = 0
    for name, card in REGISTRY.items():
        for f in card.files:
            try:
                fetch(name, f.path, download_missing=False)
                n += 1
            except DatasetError as e:
                assert "is missing" in str(e), e  # absent here (e.g. zinc250k.csv), not corrupt
    assert n >= 15


def test_missing_file_names_the_place_and_the_url(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError) as e:
        fetch("grid", "grid.pkl")
    msg = str(e.value)
    assert str(tmp_path / "graphs" / "grid.pkl") in msg and "https://" in msg and "sha256" in msg


def test_corrupt_file_is_rejected_with_both_checksums(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_DATA_DIR", str(tmp_path))
    p = tmp_path / "graphs" / "grid.pkl"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"not a pickle")
    with pytest.raises(DatasetError) as e:
        fetch("grid", "graphs/grid.pkl")
    msg = str(e.value)
    assert hashlib.sha256(b"not a pickle").hexdigest() in msg
    assert REGISTRY["grid"].files[0].sha256 in msg and "corrupt" in msg
    assert sha256sum(p) == hashlib.sha256(b"not a pickle").hexdigest()


def test_unknown_dataset_lists_the_registered_ones():
    with pytest.raises(DatasetError, match="registered: .*community_small"):
        fetch("cifar100", "x")
