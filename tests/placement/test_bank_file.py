"""Item-bank files: tcals's layout, round trips, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.placement import BankFileError, ItemBank, read_bank, write_bank

TCALS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "item-banks" / "tcals.txt"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bank.txt"
    path.write_text(text)
    return path


def test_tcals_layout_with_defaults_for_missing_columns(tmp_path: Path) -> None:
    bank = read_bank(write(tmp_path, "a\tb\tc\td\tGroup\n1.5\t-0.5\t0.2\t1\tA\n"
                                     "0.8\t1.0\t0\t0.95\tB\n"))
    assert bank.ids == ("1", "2") and bank.groups == ("A", "B")
    np.testing.assert_allclose(bank.d, [1.0, 0.95])
    two = read_bank(write(tmp_path, "b\ta\textra\n0.3\t1.2\tignored\n"))
    assert (two.a[0], two.b[0], two.c[0], two.d[0], two.groups) == (1.2, 0.3, 0, 1, ("all",))


def test_written_banks_read_back(tmp_path: Path) -> None:
    bank = ItemBank.build([1.2, 0.7], [0.1, -2.0], [0.0, 0.25], groups=["x", "y"],
                          ids=["q1", "q2"])
    write_bank(bank, tmp_path / "out.tsv", {"se_a": ["0.1", ""]})
    back = read_bank(tmp_path / "out.tsv")
    assert back.ids == bank.ids and back.groups == bank.groups
    for name in ("a", "b", "c", "d"):
        np.testing.assert_allclose(getattr(back, name), getattr(bank, name))


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    ("a\tb\n1\tx\n", 2, "b", "not a number: 'x'"),
    ("a\tb\tc\n1\t0\t0.1\n1\t0\t1.5\n", 3, "c", "guessing must be in [0, 1)"),
    ("a\tb\n-1\t0\n", 2, "a", "discrimination must be above 0"),
    ("a\tb\td\tc\n1\t0\t0.1\t0.2\n", 2, "d", "upper asymptote must be above c"),
    ("a\tb\n1\tnan\n", 2, "b", "not a finite number"),
    ("a\tc\n1\t0\n", 1, "b", "missing column"),
])
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, line: int, field: str,
                                         message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(BankFileError) as caught:
        read_bank(path)
    assert (caught.value.line, caught.value.field) == (line, field)
    assert str(caught.value).startswith(f"{path}:{line}: field {field!r}: ")
    assert message in str(caught.value)


def test_structural_errors(tmp_path: Path) -> None:
    with pytest.raises(BankFileError, match=r"bank.txt:2: 2 tab-separated fields, the header "
                                            r"has 3"):
        read_bank(write(tmp_path, "a\tb\tGroup\n1\t0\n"))
    with pytest.raises(BankFileError, match="no items under the header"):
        read_bank(write(tmp_path, "a\tb\n"))
    with pytest.raises(BankFileError, match="no such file"):
        read_bank(tmp_path / "missing.txt")


@pytest.mark.shared_data
def test_reads_tcals() -> None:
    if not TCALS.is_file():
        pytest.skip(f"../shared/data not found (looked for {TCALS})")
    bank = read_bank(TCALS)
    assert len(bank) == 85 and bank.model == "3pl"
    assert bank.group_names == ("Audio1", "Audio2", "Written1", "Written2", "Written3")
