"""Kafka's ``DumpLogSegments`` text for dump events.

Data lines go to ``out`` as events arrive.  Index mismatches, time index errors and non-consecutive
offsets are collected and written to ``err`` at the end, grouped per file, as Kafka's tool does (it
lists them newest first; kcli keeps the order they were found in).
"""

from __future__ import annotations

from collections.abc import Callable

from kcli.inspect.dump import DumpOptions, Event

Write = Callable[[str], None]

# collected event type -> (group heading, entry line); a heading without {file} is printed once per file
_DEFERRED: dict[str, tuple[str, str]] = {
    "index_mismatch": ("Mismatches in :{file}", "  Index offset: {indexOffset}, log offset: {logOffset}"),
    "timestamp_mismatch": (
        "Found timestamp mismatch in :{file}",
        "  Index timestamp: {indexTimestamp}, log timestamp: {logTimestamp}",
    ),
    "timestamp_out_of_order": (
        "Found out of order timestamp in :{file}",
        "  Index timestamp: {indexTimestamp}, Previously indexed timestamp: {previousTimestamp}",
    ),
    "indexed_offset_not_found": (
        "The following indexed offsets are not found in the log.",
        "Indexed offset: {indexOffset}, found log offset: {logOffset}",
    ),
    "non_consecutive": ("Non-consecutive offsets in {file}", "  {offset} is followed by {nextOffset}"),
}


def _bool(value: object) -> str:
    return "true" if value else "false"


def batch_line(e: Event) -> str:
    horizon = (
        "OptionalLong.empty" if e["deleteHorizonMs"] is None else f"OptionalLong[{e['deleteHorizonMs']}]"
    )
    return (
        f"baseOffset: {e['baseOffset']} lastOffset: {e['lastOffset']} count: {e['count']} "
        f"baseSequence: {e['baseSequence']} lastSequence: {e['lastSequence']} producerId: {e['producerId']} "
        f"producerEpoch: {e['producerEpoch']} partitionLeaderEpoch: {e['partitionLeaderEpoch']} "
        f"isTransactional: {_bool(e['isTransactional'])} isControl: {_bool(e['isControl'])} "
        f"deleteHorizonMs: {horizon} position: {e['position']} {e['timestampType']}: {e['maxTimestamp']} "
        f"size: {e['size']} magic: {e['magic']} compresscodec: {e['compresscodec']} crc: {e['crc']} "
        f"isvalid: {_bool(e['isvalid'])}"
    )


def snapshot_line(e: Event) -> str:
    first = e["currentTxnFirstOffset"]
    line = (
        f"producerId: {e['producerId']} producerEpoch: {e['producerEpoch']} coordinatorEpoch: "
        f"{e['coordinatorEpoch']} currentTxnFirstOffset: "
        f"{'OptionalLong.empty' if first is None else f'OptionalLong[{first}]'} lastTimestamp: {e['lastTimestamp']} "
    )
    if "lastOffset" in e:
        line += (
            f"firstSequence: {e['firstSequence']} lastSequence: {e['lastSequence']} lastOffset: {e['lastOffset']} "
            f"offsetDelta: {e['offsetDelta']} timestamp: {e['timestamp']}"
        )
    return line


def record_line(e: Event, opts: DumpOptions) -> str:
    line, prefix = "", "| "
    if not opts.skip_record_metadata:
        keys = ",".join(e["headerKeys"])  # type: ignore[arg-type]
        line = (
            f"| offset: {e['offset']} {e['timestampType']}: {e['timestamp']} keySize: {e['keySize']} "
            f"valueSize: {e['valueSize']} sequence: {e['sequence']} headerKeys: [{keys}]"
        )
        prefix = " "
        if "endTxnMarker" in e:
            line += f" endTxnMarker: {e['endTxnMarker']} coordinatorEpoch: {e['coordinatorEpoch']}"
        elif "controlType" in e:
            line += f" controlType: {e['controlType']}({e['controlTypeId']})"
    if opts.with_data:
        if e.get("key") is not None:
            line += f"{prefix}key: {e['key']}"
        if e.get("payload") is not None:
            line += f" payload: {e['payload']}"
    return line


class TextRenderer:
    """Renders events as Kafka's lines; ``finish()`` writes the collected diagnostics."""

    def __init__(self, out: Write, err: Write, opts: DumpOptions) -> None:
        self.out = out
        self.err = err
        self.opts = opts
        self._deferred: dict[str, dict[str, list[Event]]] = {kind: {} for kind in _DEFERRED}

    def __call__(self, e: Event) -> None:
        kind = e["type"]
        if kind == "batch":
            self.out(batch_line(e))
        elif kind == "record":
            self.out(record_line(e, self.opts))
        elif kind == "index_entry":
            self.out(f"offset: {e['offset']} position: {e['position']}")
        elif kind == "timeindex_entry":
            self.out(f"timestamp: {e['timestamp']} offset: {e['offset']}")
        elif kind == "txn_entry":
            self.out(
                f"version: {e['version']} producerId: {e['producerId']} firstOffset: {e['firstOffset']} "
                f"lastOffset: {e['lastOffset']} lastStableOffset: {e['lastStableOffset']}"
            )
        elif kind == "snapshot_entry":
            self.out(snapshot_line(e))
        elif kind == "partition_metadata":
            self.out(f"version: {e['version']}")
            self.out(f"topic_id: {e['topicId']}")
        elif kind == "corrupt_file":
            self.err(f"{e['file']}: {e['error']}")
        elif kind == "file":
            self.out(f"Dumping {e['file']}")
        elif kind == "log_start":
            self.out(f"Log starting offset: {e['offset']}")
        elif kind == "invalid_bytes":
            self.out(f"Found {e['bytes']} invalid bytes at the end of {e['name']}")
        elif kind == "corrupt":
            self.out(f"Found a corrupt batch at position {e['position']}: {e['error']}")
        elif kind == "record_error":
            self.out(f"Cannot read the records of the batch at position {e['position']}: {e['error']}")
        elif kind == "index_empty":
            self.out(f"{e['file']} is empty.")
        elif kind == "no_log":
            self.err(f"No log file {e['log']}: the entries of {e['file']} cannot be checked")
        elif kind == "sanity":
            if e["ok"]:
                self.out(f"{e['file']} passed sanity check.")
            else:
                self.err(f"{e['file']} failed sanity check: {e['error']}")
        elif kind in self._deferred:
            self._deferred[kind].setdefault(str(e["file"]), []).append(e)

    def finish(self) -> None:
        for kind, (heading, entry) in _DEFERRED.items():
            for file, events in self._deferred[kind].items():
                self.err(heading.format(file=file))
                for e in events:
                    self.err(entry.format(**e))
