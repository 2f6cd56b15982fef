"""Kafka's ``partition.metadata`` file: which topic id a replica folder belongs to.

Kafka writes it into every partition folder (``PartitionMetadataFile``) as two lines, without a final
newline: ``version: 0`` and ``topic_id: <id>``, the id being the 16-byte uuid in URL-safe base64
without padding (Kafka's ``Uuid.toString``).  A folder left over from a deleted topic that was created
again under the same name then cannot be served as the new topic: its id differs.  kcli stores topic ids
as 32 hex digits in the cluster metadata; :func:`topic_uuid` gives the 16 bytes the wire and this file
use.  A folder without the file (made before kcli wrote it) gets it on first open."""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading

from kcli.errors import CorruptRecordError
from kcli.storage.fileio import write_file

FILE_NAME = "partition.metadata"
VERSION = 0
ZERO_UUID = bytes(16)
_LINE = re.compile(r":\s+")


def topic_uuid(topic_id: str) -> bytes:
    """The 16 bytes of a topic id as kcli's metadata stores it (hex); Kafka's ZERO_UUID for none."""
    try:
        raw = bytes.fromhex(topic_id)
    except ValueError:
        return ZERO_UUID
    return raw if len(raw) == 16 else ZERO_UUID


def uuid_text(raw: bytes) -> str:
    """Kafka's text form of a uuid: URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def encode(topic_id: str) -> bytes:
    """The file's bytes for a topic id, exactly as Kafka writes them."""
    return f"version: {VERSION}\ntopic_id: {uuid_text(topic_uuid(topic_id))}".encode()


def read(directory: str) -> bytes | None:
    """The topic id (16 bytes) a replica folder's file names; None without the file.  A file that does
    not parse is damage (CorruptRecordError naming it), as Kafka refuses it."""
    try:
        return parse(os.path.join(directory, FILE_NAME))[1]
    except FileNotFoundError:
        return None


def parse(path: str) -> tuple[int, bytes]:
    """(version, topic id) of the file at ``path``; CorruptRecordError when it does not parse."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    lines = text.splitlines()
    version = _LINE.split(lines[0]) if lines else []
    topic = _LINE.split(lines[1]) if len(lines) > 1 else []
    if len(version) != 2 or version[0] != "version" or not version[1].isdigit() or int(version[1]) < VERSION:
        raise CorruptRecordError(f"malformed version line {lines[0] if lines else ''!r}", path)
    if len(topic) != 2 or topic[0] != "topic_id":
        raise CorruptRecordError(f"malformed topic id line {lines[1] if len(lines) > 1 else ''!r}", path)
    try:
        raw = base64.urlsafe_b64decode(topic[1] + "=" * (-len(topic[1]) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16 or raw == ZERO_UUID:
        raise CorruptRecordError(f"invalid topic id {topic[1]!r}", path)
    return int(version[1]), raw


def ensure(directory: str, topic_id: str) -> None:
    """Check that the replica folder belongs to the topic with ``topic_id`` (hex), writing the file
    where it is missing.  A folder of another topic (a different id) is damage: CorruptRecordError,
    never served as this topic.  Topics without an id (none in kcli's metadata) are not checked."""
    expected = topic_uuid(topic_id)
    if expected == ZERO_UUID:
        return
    found = read(directory)
    if found is None:
        _write(os.path.join(directory, FILE_NAME), encode(topic_id))
    elif found != expected:
        raise CorruptRecordError(
            f"replica folder belongs to topic id {uuid_text(found)}, not {uuid_text(expected)} "
            "(a topic deleted and created again under the same name?)",
            os.path.join(directory, FILE_NAME),
            hint="move the folder away: kcli serves no replica whose topic id differs",
        )


def _write(path: str, data: bytes) -> None:
    """Temp file, fsync, rename, fsync the folder -- with a temp name of this process and thread: the
    folder's creator and a broker opening the replica may write the (same) file at the same moment."""
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"
    try:
        write_file(tmp, data, sync=True)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
