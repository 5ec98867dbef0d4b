"""The probe's ``update readings set value=value+100`` was noticed only by ``segments
check``, which then suggested ``segments rebuild``: the one command that would have wiped
the values as first recorded. Now the seal ledger says which side changed, and a rebuild
over changed readings is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gmp_edge.collector.reading import Quality, Reading
from gmp_edge.edge.cli import main
from gmp_edge.historian.store import Store
from tests.unit.conftest import TEMP, small_plant

T0 = 1_790_000_000_000_000


def folded_store(tmp_path: Path) -> tuple[Path, Path]:
    cfg, _ = small_plant().load(tmp_path)
    store = Store(cfg.store.path)
    store.register_tags([(TEMP, "degC", "temperature", "trh-01")])
    store.commit([Reading(TEMP, 20.0 + i / 10, Quality.GOOD, T0 + i * 10**6) for i in range(300)])
    store.index_segments(max_rows=10_000)
    store.close()
    return tmp_path / "plant.toml", cfg.store.path


def segments_of(db: Path) -> list[bytes]:
    conn = sqlite3.connect(db)
    try:
        return [bytes(r[0]) for r in conn.execute("select data from segments order by rowid")]
    finally:
        conn.close()


def test_changed_readings_are_named_and_their_segments_kept(tmp_path: Path, capsys) -> None:
    config, db = folded_store(tmp_path)
    before = segments_of(db)
    conn = sqlite3.connect(db)
    conn.execute("update readings set value = value + 100 where rowid = 7")
    conn.commit()
    conn.close()
    assert main(["segments", "check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "readings table was changed outside gmp-edge" in out and "do not rebuild" in out
    assert "rows changed outside gmp-edge" in out
    assert main(["segments", "rebuild", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("refused:") and "keep them as evidence" in err
    assert segments_of(db) == before  # the values as first recorded are still there


def test_changed_segments_are_rebuilt_from_the_sealed_readings(tmp_path: Path, capsys) -> None:
    config, db = folded_store(tmp_path)
    conn = sqlite3.connect(db)
    (rowid, blob) = conn.execute("select rowid, data from segments limit 1").fetchone()
    forged = bytearray(blob)
    forged[8] ^= 0x01
    conn.execute("update segments set data=? where rowid=?", (bytes(forged), rowid))
    conn.commit()
    conn.close()
    assert main(["segments", "check", "--config", str(config)]) == 1
    assert "readings match their seals, so the segments were changed" in capsys.readouterr().out
    assert main(["segments", "rebuild", "--config", str(config)]) == 0
    assert main(["segments", "check", "--config", str(config)]) == 0
