"""The run folder keeps a copy of the user's data (``genmodels.datasets.user``)."""

import dataclasses
from pathlib import Path

import pytest

from genmodels.datasets.user import UserData, resolve_run_data, snapshot_user_data
from genmodels.errors import DataError, MissingFileError
from genmodels.recipes import load_recipe


@pytest.fixture
def cfg():
    return load_recipe("gdss_qm9")[0]


def with_data(cfg, dataset, **data):
    return dataclasses.replace(cfg, dataset=str(dataset), data=UserData(**data))


def test_a_file_is_copied_and_named_relative_to_the_run(tmp_path, cfg):
    src = tmp_path / "mine.smi"
    src.write_text("CCO\nCCN\n")
    run = tmp_path / "run"
    stored = snapshot_user_data(with_data(cfg, src, split_seed=3), run)
    assert stored.dataset == "data/mine.smi" and stored.data.split_seed == 3
    assert (run / "data" / "mine.smi").read_bytes() == src.read_bytes()
    # resolved against the run folder (or its checkpoints folder): the copy, absolute
    for folder in (run, run / "checkpoints"):
        assert resolve_run_data(stored, folder).dataset == str(run / "data" / "mine.smi")
    # elsewhere, or for a benchmark, nothing changes
    assert resolve_run_data(stored, tmp_path / "other") == stored
    assert resolve_run_data(cfg, run) == cfg and snapshot_user_data(cfg, run) == cfg
    # the original may go: the run has what it needs
    src.unlink()
    assert snapshot_user_data(resolve_run_data(stored, run), run) == stored


def test_a_resumed_run_keeps_its_copy_and_refuses_a_changed_original(tmp_path, cfg):
    src = tmp_path / "mine.smi"
    src.write_text("CCO\nCCN\n")
    run = tmp_path / "run"
    first = snapshot_user_data(with_data(cfg, src), run)
    assert snapshot_user_data(with_data(cfg, src), run) == first  # same hash on resume
    src.write_text("CCO\nCCN\nCCC\n")
    with pytest.raises(DataError, match="mine.smi changed since this run started .* resume with "):
        snapshot_user_data(with_data(cfg, src), run)
    # resuming on the copy itself is the way on
    assert snapshot_user_data(with_data(cfg, run / "data" / "mine.smi"), run) == first
    assert (run / "data" / "mine.smi").read_text() == "CCO\nCCN\n"


def test_folders_and_separate_train_and_test_files(tmp_path, cfg):
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "a.cif").write_text("data_a\n")
    (folder / ".hidden").write_text("x")
    train, test = tmp_path / "tr.smi", tmp_path / "te.smi"
    train.write_text("CCO\n")
    test.write_text("CCN\n")
    run = tmp_path / "run"
    stored = snapshot_user_data(with_data(cfg, folder, train_file=train, test_file=test), run)
    assert (stored.dataset, stored.data.train_file, stored.data.test_file) == (
        "data/cifs",
        "data/train-tr.smi",
        "data/test-te.smi",
    )
    names = sorted(p.name for p in (run / "data").iterdir())
    assert names == ["cifs", "sources.json", "test-te.smi", "train-tr.smi"]
    assert [p.name for p in (run / "data" / "cifs").iterdir()] == ["a.cif"]
    back = resolve_run_data(stored, run)
    assert Path(back.data.test_file).read_text() == "CCN\n"


def test_a_missing_file_is_one_clear_error(tmp_path, cfg):
    with pytest.raises(MissingFileError, match="--dataset .*x.smi: no such file"):
        snapshot_user_data(with_data(cfg, tmp_path / "x.smi"), tmp_path)
    (tmp_path / "x.smi").write_text("CCO\n")
    with pytest.raises(MissingFileError, match="--train-file .*nope.smi: no such file"):
        snapshot_user_data(
            with_data(cfg, tmp_path / "x.smi", train_file=tmp_path / "nope.smi"), tmp_path
        )
