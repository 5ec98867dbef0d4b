"""The anchors file read as a feed: incremental, line-numbered as verify numbers them, a
half-written line held back, a cut-back file indexed again."""

from __future__ import annotations

from pathlib import Path

from gmp_edge.integrity.anchor_feed import AnchorFeed
from gmp_edge.integrity.anchors import anchors_path_for


def test_lines_after_a_cursor_incrementally(tmp_path: Path) -> None:
    store = tmp_path / "edge.db"
    feed = AnchorFeed(store)
    assert feed.after(0, 10) == [] and feed.last_line() == 0  # no file yet
    path = anchors_path_for(store)
    path.write_text('{"n":1}\n\n{"n":3}\n{"n":4', encoding="utf-8")
    # line 2 is blank (skipped, still counted); line 4 is still being written
    assert feed.after(0, 10) == [(1, '{"n":1}'), (3, '{"n":3}')]
    assert feed.last_line() == 3
    assert feed.after(1, 10) == [(3, '{"n":3}')]
    assert feed.after(0, 1) == [(1, '{"n":1}')]
    with path.open("a", encoding="utf-8") as f:
        f.write('}\n{"n":5}\n')
    assert feed.after(3, 10) == [(4, '{"n":4}'), (5, '{"n":5}')]
    assert feed.after(5, 10) == [] and feed.after(99, 10) == []


def test_a_cut_back_file_is_indexed_again(tmp_path: Path) -> None:
    store = tmp_path / "edge.db"
    path = anchors_path_for(store)
    path.write_text("a\nb\nc\n", encoding="utf-8")
    feed = AnchorFeed(store)
    assert feed.last_line() == 3
    path.write_text("x\n", encoding="utf-8")
    assert feed.after(0, 10) == [(1, "x")] and feed.last_line() == 1
