"""The transaction store keeps the states it parsed (OffsetFetch with require_stable and the broker's
upkeep read every id's state): an unchanged file is not parsed again, a replaced one is, a file changed
too recently to be told from a later one is never kept, and callers cannot change what is kept."""

from __future__ import annotations

import os
import time

import pytest

from kcli.cluster.datadir import DataDir
from kcli.groups.offsets import CommittedOffset
from kcli.transactions import store as store_module
from kcli.transactions.state import TransactionMetadata, TxnState
from kcli.transactions.store import TransactionStore


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """The transactional ids parsed from their files, in order."""
    seen: list[str] = []
    real = TransactionMetadata.from_json.__func__

    def counting(cls, data):
        seen.append(data["transactional_id"])
        return real(cls, data)

    monkeypatch.setattr(TransactionMetadata, "from_json", classmethod(counting))
    return seen


def _store(tmp_path) -> TransactionStore:
    dd = DataDir(str(tmp_path))
    os.makedirs(dd.cluster_dir, exist_ok=True)
    return TransactionStore(dd)


def _age(store: TransactionStore, transactional_id: str, seconds: float = 10) -> None:
    then = time.time() - seconds
    os.utime(store.path(transactional_id), (then, then))


def _ongoing(name: str) -> TransactionMetadata:
    return TransactionMetadata(name, 7, 0, 60000, state=TxnState.ONGOING, start_ms=1, partitions={("t", 0)},
                               groups={"g"}, pending_offsets={"g": {("t", 0): CommittedOffset(5, "", 1, -1)}})


def test_unchanged_files_are_not_parsed_again(tmp_path, parses):
    store = _store(tmp_path)
    for name in ("a", "b", "c"):
        store.save(TransactionMetadata(name, 1, 0, 60000))
        _age(store, name)
    assert [m.transactional_id for m in store.all()] == ["a", "b", "c"] and parses == ["a", "b", "c"]
    assert [m.transactional_id for m in store.all()] == ["a", "b", "c"]
    assert store.load("b") is not None
    assert parses == ["a", "b", "c"]


def test_a_replaced_file_is_parsed_again_even_with_the_same_mtime(tmp_path, parses):
    store = _store(tmp_path)
    store.save(_ongoing("a"))
    _age(store, "a")
    assert store.load("a").state is TxnState.ONGOING
    before = os.stat(store.path("a")).st_mtime_ns
    changed = _ongoing("a")
    changed.state = TxnState.PREPARE_ABORT
    store.save(changed)
    os.utime(store.path("a"), ns=(before, before))  # a new inode: still told apart
    assert store.load("a").state is TxnState.PREPARE_ABORT
    assert [m.state for m in store.all()] == [TxnState.PREPARE_ABORT]
    assert parses == ["a", "a"]


def test_recent_files_are_never_kept(tmp_path, parses):
    store = _store(tmp_path)
    store.save(_ongoing("a"))  # just written: a later file could share its key on a coarse clock
    for _ in range(3):
        assert store.load("a") is not None
    assert parses == ["a", "a", "a"]


def test_callers_get_copies(tmp_path):
    store = _store(tmp_path)
    store.save(_ongoing("a"))
    _age(store, "a")
    for meta in (store.load("a"), next(store.all())):
        meta.partitions.add(("u", 1))
        meta.groups.clear()
        meta.pending_offsets["g"][("t", 0)] = CommittedOffset(99, "", 1, -1)
        meta.applied_groups.add("g")
        meta.transit(TxnState.PREPARE_COMMIT, 5)
    again = store.load("a")
    assert again == _ongoing("a")


def test_a_deleted_id_is_forgotten(tmp_path):
    store = _store(tmp_path)
    store.save(_ongoing("a"))
    _age(store, "a")
    assert [m.transactional_id for m in store.all()] == ["a"]
    store.delete("a")
    assert list(store.all()) == [] and store.load("a") is None
    assert store._parsed == {}


def test_a_filter_sees_every_state_and_yields_copies_of_the_chosen(tmp_path):
    store = _store(tmp_path)
    store.save(_ongoing("a"))
    store.save(TransactionMetadata("b", 2, 0, 60000))
    for name in ("a", "b"):
        _age(store, name)
    chosen = list(store.all(lambda meta: meta.state is TxnState.ONGOING))
    assert [m.transactional_id for m in chosen] == ["a"]
    chosen[0].groups.clear()
    assert store.load("a").groups == {"g"}
    assert store_module.SETTLED_NS >= 1_000_000_000  # a file system with a one-second clock is covered
