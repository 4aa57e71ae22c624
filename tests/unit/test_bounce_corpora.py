"""Public bounce corpora: every file reads as expected, and never worse than flufl.bounce."""

from __future__ import annotations

import pytest

from tests.support.bounce_corpora import CORPORA, Expected, expected_rows, ours, score

ROWS = expected_rows()


def test_every_corpus_file_has_an_expected_reading() -> None:
    files = {
        p.relative_to(CORPORA).as_posix()
        for p in CORPORA.glob("*/*")
        if p.name not in ("LICENSE", "README.md")
    }
    assert files == {row.name for row in ROWS}
    assert len(files) > 150


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_each_file_reads_as_expected(row: Expected) -> None:
    reading, classification = ours((CORPORA / row.name).read_bytes())

    assert classification == row.classification
    assert reading.kinds == row.kinds


def test_we_are_at_least_as_right_as_flufl_bounce_alone_and_better_on_dsns() -> None:
    s = score()

    assert s.flufl_only == ()  # no file flufl.bounce alone reads right and we do not
    assert s.ours_right >= s.flufl_right
    # On well-formed DSNs we also give each recipient's kind, which flufl.bounce never does.
    assert s.dsn_files >= 40
    assert s.dsn_ours_right == s.dsn_files
