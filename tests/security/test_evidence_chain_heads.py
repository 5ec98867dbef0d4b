"""Issue 14: the evidence package carries the chain heads, so a reviewer can prove offline
that the batch's readings are the ones the box acquired and sealed.

Each test exports a real package from a store whose batch readings span several commit
blocks (one straddling the window's start, four wholly inside it, one holding another
room's reading too) with a signed anchor among them, then doctors the package the way an
attacker would: a reading changed in ``readings.csv``, the manifest's hashes fixed and
re-signed with a key of their own (or the box's, for root on the box), the chain rewritten
to match. A store tampered with after the export is not the package's concern
(``tests/security/test_tamper.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gmp_edge.evidence import verify as ev
from gmp_edge.integrity import keys
from tests.unit.test_evidence import (
    Chained,
    Env,
    assert_fails,
    change_value,
    members,
    remanifest,
    resigned,
    rewrite,
)


@pytest.fixture
def box(tmp_path: Path):
    env = Env(tmp_path)
    chained = Chained(env)
    info = env.build()
    yield chained, info
    env.close()


def _dump(man: dict[str, Any]) -> bytes:
    return (json.dumps(man, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def forge(
    src: Path,
    dst: Path,
    changed: dict[str, bytes],
    key: Ed25519PrivateKey,
    *,
    own_public_key: bool = True,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """The package with members replaced, the manifest's hashes fixed and re-signed with
    ``key``; ``own_public_key``: public_key.pem and the stated fingerprint are key's too."""
    m = members(src)
    man = json.loads(remanifest(m, changed))
    replace = dict(changed)
    if own_public_key:
        pem = keys.public_pem(key)
        replace["public_key.pem"] = pem
        man["edge_box"]["key_fingerprint"] = keys.fingerprint(key)
        for f in man["files"]:
            if f["path"] == "public_key.pem":
                f["size"], f["sha256"] = len(pem), hashlib.sha256(pem).hexdigest()
    if edit is not None:
        edit(man)
    man_bytes = _dump(man)
    return rewrite(
        src, dst, {**replace, "manifest.json": man_bytes, "manifest.sig": key.sign(man_bytes)}
    )


def changed_reading(chained: Chained, m: dict[str, bytes], seq: int) -> bytes:
    """readings.csv with one value of block ``seq``'s rows changed."""
    a, b = chained.rows_of(m, seq)
    data = change_value(m["readings.csv"], (a + b) // 2, b"26.25")
    assert data != m["readings.csv"]
    return data


def test_an_exported_package_proves_its_readings_across_several_commit_blocks(box) -> None:
    chained, info = box
    report = ev.verify_package(info.path, info.key_fingerprint)
    assert report.ok, report.problems
    text = report.text()
    assert "230 rows fully proven" in text and "each of the 5 blocks" in text
    assert f"the anchor signs seal block {chained.mixed}, which is in this chain" in text
    assert "store check at export ('gmp-edge verify'): verified" in text


def test_one_value_changed_and_resigned_with_another_key(box) -> None:
    chained, info = box
    env = chained.env
    box_fp = info.key_fingerprint
    victim = chained.inside[1]
    data = changed_reading(chained, members(info.path), victim)
    attacker = Ed25519PrivateKey.generate()
    path = forge(info.path, env.tmp / "forged.zip", {"readings.csv": data}, attacker)
    report = ev.verify_package(path)
    # the file hashes and the manifest signature fit; the block and the anchor's signer do not
    assert not any("SHA-256" in p or "manifest.sig" in p for p in report.problems)
    assert_fails(
        report,
        f"the readings of seal block {victim} (",
        f"is signed by key {box_fp}, this package by key {keys.fingerprint(attacker)}",
    )
    # with the box's fingerprint the foreign key is named as well
    assert_fails(
        ev.verify_package(path, box_fp),
        f"key fingerprint {keys.fingerprint(attacker)} is not the expected {box_fp}",
        f"the readings of seal block {victim} (",
    )


def test_one_value_changed_and_resigned_with_another_key_under_the_box_public_key(box) -> None:
    chained, info = box
    victim = chained.inside[3]
    data = changed_reading(chained, members(info.path), victim)
    path = forge(
        info.path,
        chained.env.tmp / "forged.zip",
        {"readings.csv": data},
        Ed25519PrivateKey.generate(),
        own_public_key=False,
    )
    assert_fails(
        ev.verify_package(path),
        "manifest.sig: the signature does not match",
        f"the readings of seal block {victim} (",
    )


def _forged_chain(
    chained: Chained, m: dict[str, bytes], victim: int, data: bytes
) -> tuple[bytes, str]:
    """seal_chain.jsonl with block ``victim``'s readings digest recomputed from ``data``
    (the doctored readings.csv) and every hash after it; and the new head hash."""
    seal = json.loads(m["manifest.json"])["seal"]
    a, b = chained.rows_of(m, victim)
    blocks = [json.loads(x) for x in m["seal_chain.jsonl"].decode().splitlines()]
    block = next(x for x in blocks if x[0] == victim)
    rowids = [r for first, count in block[12] for r in range(first, first + count)]
    groups: dict[str, tuple[Any, int]] = {}
    records = list(ev.csv_records(data.decode().splitlines(keepends=True)))[1:]
    for rowid, i in zip(rowids, range(a, b), strict=True):
        fields, quoted = records[i]
        assert fields is not None
        sealed = ev.sealed_reading(rowid, fields, quoted, seal["tag_ids"])
        h, n = groups.get(ev.group_of(fields[0])) or (hashlib.sha256(), 0)
        h.update((repr(sealed) + "\n").encode())
        groups[ev.group_of(fields[0])] = (h, n + 1)
    mine = {k: (n, h.hexdigest()) for k, (h, n) in groups.items()}
    block[6] = ev.combine_groups({**mine, **{k: (d[0], d[1]) for k, d in block[13].items()}})
    prev = seal["segment"]["prev_sha256"]
    for x in blocks:
        x[9] = ev.seal_block_hash(prev, x[:9])
        prev = x[9]
    return "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in blocks).encode(), prev


def test_the_chain_rewritten_to_match_the_change(box) -> None:
    chained, info = box
    env = chained.env
    m = members(info.path)
    victim = chained.inside[0]
    data = changed_reading(chained, m, victim)
    chain, head = _forged_chain(chained, m, victim, data)

    def new_head(man: dict[str, Any]) -> None:
        man["seal"]["head"]["sha256"] = head

    changed = {"readings.csv": data, "seal_chain.jsonl": chain}
    # re-signed with the box key itself (root on the box): the anchor written before the
    # export does not sign the rewritten chain
    key = keys.load_or_create(env.key_path)
    path = forge(info.path, env.tmp / "root.zip", changed, key, own_public_key=False, edit=new_head)
    report = ev.verify_package(path, info.key_fingerprint)
    (problem,) = report.problems
    assert f"signs seal block {chained.mixed} with sha256" in problem
    assert "the chain was rewritten" in problem

    # with another key and the anchor dropped, the package is consistent in itself: only
    # the box's fingerprint tells (as for every part of the package, ADR 0016)
    def no_anchor(man: dict[str, Any]) -> None:
        new_head(man)
        s = man["seal"]
        s["anchor"] = s["anchored_seq"] = None
        s["unanchored_blocks"] = s["head"]["seq"]
        s["no_anchor"] = "none"

    attacker = Ed25519PrivateKey.generate()
    path = forge(info.path, env.tmp / "all.zip", changed, attacker, edit=no_anchor)
    report = ev.verify_package(path)
    assert report.ok, report.problems
    assert any("no signed anchor covers the chain" in u for u in report.unproven)
    assert_fails(
        ev.verify_package(path, info.key_fingerprint),
        f"key fingerprint {keys.fingerprint(attacker)} is not the expected {info.key_fingerprint}",
    )


def test_a_block_that_also_sealed_another_room_is_proven_by_the_batchs_rows(box) -> None:
    """Before equipment groups, a block that also sealed another room's reading could be
    proven only by the chain: a change to its rows re-signed with the box key passed. Now
    the package carries the other room's group digest and the change is found."""
    chained, info = box
    env = chained.env
    m = members(info.path)
    data = changed_reading(chained, m, chained.mixed)
    report = ev.verify_package(resigned(env, info.path, "root.zip", {"readings.csv": data}))
    assert_fails(report, f"the readings of seal block {chained.mixed} (")


def test_a_block_straddling_the_window_rests_on_the_chain_and_the_signature(box) -> None:
    """The documented limit of the partial proof: a block that also sealed readings of the
    batch's own equipment outside the window cannot be recomputed from the package, so a
    change to its rows re-signed with the box key is not found; the report says those rows
    are proven by the chain alone. Re-signed with another key it is found (the anchor's
    signer)."""
    chained, info = box
    env = chained.env
    m = members(info.path)
    data = changed_reading(chained, m, chained.edge)
    report = ev.verify_package(resigned(env, info.path, "root.zip", {"readings.csv": data}))
    assert report.ok, report.problems
    assert any(
        "rows of readings.csv are proven by the chain alone" in u and str(chained.edge) in u
        for u in report.unproven
    )
    attacker = Ed25519PrivateKey.generate()
    path = forge(info.path, env.tmp / "forged.zip", {"readings.csv": data}, attacker)
    assert_fails(ev.verify_package(path), f"this package by key {keys.fingerprint(attacker)}")
