"""Sample-file checks shared by the readers (genmodels.domains.files) and the readers'
file-level errors: each bad file gives one DataError line naming the file."""

import pickle
import zipfile

import numpy as np
import pytest

from genmodels.domains.crystals import read_cif, read_compositions
from genmodels.domains.files import check_suffix, load_npz, read_text
from genmodels.domains.graphs import read_graph6
from genmodels.domains.molecules import check_smiles, read_smiles
from genmodels.errors import DataError, MissingFileError


def test_check_suffix(tmp_path):
    smi = (".smi", ".txt", ".csv", ".csv.gz")
    for name in ("a.smi", "A.SMI", "a.csv.gz", "a.b.txt"):
        assert check_suffix(tmp_path / name, smi, "molecules") == tmp_path / name
    with pytest.raises(DataError) as err:
        check_suffix(tmp_path / "a.g6", smi, "molecules")
    assert str(err.value) == (
        f"{tmp_path / 'a.g6'} is a .g6 file; this recipe's samples are "
        ".smi/.txt/.csv/.csv.gz (molecules)"
    )
    with pytest.raises(DataError, match="a file without a suffix; this recipe's samples are .g6"):
        check_suffix(tmp_path / "samples", (".g6",), "graphs")
    with pytest.raises(DataError, match=r"a\.gz is a \.gz file"):
        check_suffix(tmp_path / "a.gz", smi, "molecules")


def test_read_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffCCO\n".encode())
    assert read_text(path, "x") == "CCO\n"  # byte-order mark dropped
    path.write_bytes(b"CCO\nC\x00C\n")
    with pytest.raises(DataError, match=r"t\.txt is a binary file, not text \(byte 5 .*expected x"):
        read_text(path, "x")
    path.write_bytes(b"CCO\n\xff\n")
    with pytest.raises(DataError, match=r"byte 4 is not UTF-8"):
        read_text(path, "x")
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"t\.txt holds no samples \(the file is empty\)"):
        read_text(path, "x")
    with pytest.raises(MissingFileError, match="is a folder"):
        read_text(tmp_path, "x")
    with pytest.raises(FileNotFoundError, match=r"nope\.txt does not exist"):
        read_text(tmp_path / "nope.txt", "x")


def test_load_npz(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, images=np.arange(6).reshape(3, 2))
    np.testing.assert_array_equal(load_npz(good, "images", "x"), np.arange(6).reshape(3, 2))
    bare = tmp_path / "bare.npz"
    with open(bare, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DataError, match=r"bare\.npz is a bare \.npy array"):
        load_npz(bare, "images", "x")
    pkl = tmp_path / "pkl.npz"
    pkl.write_bytes(pickle.dumps({"images": [1, 2]}))
    with pytest.raises(DataError, match=r"pkl\.npz: not an \.npz archive; expected x") as err:
        load_npz(pkl, "images", "x")
    assert "allow_pickle" not in str(err.value)
    # a flipped byte inside the compressed member: the CRC or zlib check fails
    comp = tmp_path / "comp.npz"
    np.savez_compressed(comp, images=np.random.default_rng(0).integers(0, 255, (64, 64)))
    data = bytearray(comp.read_bytes())
    with zipfile.ZipFile(comp) as z:
        info = z.getinfo("images.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    comp.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"comp\.npz"):
        load_npz(comp, "images", "x")


def test_text_readers_name_the_file_and_the_line(tmp_path):
    g6 = tmp_path / "s.g6"
    g6.write_text("Bw\n\nCCO\n")
    with pytest.raises(DataError, match=r"s\.g6:3: not a graph6 line \('CCO'") as err:
        read_graph6(g6)
    assert "is it a sample file" not in str(err.value)  # lines 1-2 were graphs
    g6.write_text("CCO\n")
    with pytest.raises(DataError, match=r"s\.g6:1: .*is it a sample file of this recipe\?"):
        read_graph6(g6)
    smi = tmp_path / "s.smi"
    smi.write_text("SMILES\nBw\n\nDQc\n")
    with pytest.raises(DataError) as err:
        read_smiles(smi)
    assert str(err.value) == (
        f"no line of {smi} is a SMILES string (line 2: 'Bw'); is it a sample file of this recipe?"
    )
    smi.write_text("smiles\n")
    with pytest.raises(DataError, match="holds no samples"):
        read_smiles(smi)
    assert check_smiles(["", "C1CC"] + ["C(C)(C)(C)(C)C"], smi) == ["", "C1CC", "C(C)(C)(C)(C)C"]
    cif = tmp_path / "s.cif"
    cif.write_text("# just a comment\n")
    with pytest.raises(DataError, match=r"s\.cif has no data_ block"):
        read_cif(cif)
    cif.write_text("data_x\n_cell_length_a 3.0\nloop_\n _atom_site_fract_x\n nonsense\n")
    with pytest.raises(DataError, match=r"no data_ block of .*s\.cif is a crystal \(block 0"):
        read_cif(cif, keep_failed=True)
    txt = tmp_path / "s.txt"
    txt.write_text("c1ccccc1\n")
    with pytest.raises(DataError, match=r"s\.txt:1: cannot read composition 'c1ccccc1'.*recipe\?"):
        read_compositions(txt)
