"""How records look as text: JSON lines (lossless both ways) and kcat-style ``--format`` strings.

In JSON, a key, value or header value is ``null``, a string (valid UTF-8), or ``{"base64": "..."}`` for
other bytes, so ``kcli consume --json | kcli produce --json`` copies records exactly.
"""

from __future__ import annotations

import base64
import json
import re

from kcli.errors import UsageError
from kcli.storage.records import Record


def _enc(data: bytes | None) -> object:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _dec(obj: object, what: str) -> bytes | None:
    if obj is None:
        return None
    if isinstance(obj, str):
        return _utf8(obj, what)
    if isinstance(obj, dict) and set(obj) == {"base64"} and isinstance(obj["base64"], str):
        try:
            return base64.b64decode(obj["base64"], validate=True)
        except ValueError:
            raise UsageError(f"{what} has invalid base64") from None
    raise UsageError(f"{what} must be null, a string or {{\"base64\": ...}}")


def _utf8(text: str, what: str) -> bytes:
    """JSON's ``\\ud800`` escapes can spell a lone surrogate, which is no character and has no UTF-8."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} holds a lone surrogate escape, which is not Unicode") from None


def record_to_json(topic: str, partition: int, rec: Record) -> str:
    return json.dumps(
        {
            "topic": topic,
            "partition": partition,
            "offset": rec.offset,
            "timestamp": rec.timestamp,
            "key": _enc(rec.key),
            "value": _enc(rec.value),
            "headers": [[k, _enc(v)] for k, v in rec.headers],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


class JsonInput:
    """One record parsed from a JSON line.  Every field but ``value`` may be left out; ``value`` may
    not, since ``"value": null`` is a tombstone and a line that forgot its value must not delete a key."""

    __slots__ = ("key", "value", "headers", "partition", "timestamp")

    def __init__(self, line: bytes | str, lineno: int) -> None:
        try:
            obj = json.loads(line)
        except UnicodeDecodeError:
            raise UsageError(f"line {lineno}: not valid UTF-8, so not JSON") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"line {lineno}: not valid JSON ({exc.msg})") from None
        except ValueError:  # the one other: an integer longer than Python converts (4300 digits)
            raise UsageError(f"line {lineno}: a number has too many digits") from None
        except RecursionError:
            raise UsageError(f"line {lineno}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise UsageError(f"line {lineno}: expected a JSON object")
        if "value" not in obj:
            raise UsageError(f'line {lineno}: no "value" field', hint='a null value (a tombstone) is "value": null')
        self.key = _dec(obj.get("key"), f"line {lineno}: key")
        self.value = _dec(obj["value"], f"line {lineno}: value")
        headers = obj.get("headers") or []
        if isinstance(headers, dict):
            headers = list(headers.items())
        if not isinstance(headers, list) or not all(isinstance(h, list | tuple) and len(h) == 2 for h in headers):
            raise UsageError(f"line {lineno}: headers must be a list of [key, value] pairs")
        self.headers = [(_header_key(k, lineno), _dec(v, f"line {lineno}: header {k!r}")) for k, v in headers]
        self.partition = _opt_int(obj.get("partition"), f"line {lineno}: partition", _INT32_MAX)
        # like Kafka's ProducerRecord: a timestamp is null (now) or milliseconds since the epoch, >= 0
        self.timestamp = _opt_int(obj.get("timestamp"), f"line {lineno}: timestamp", _INT64_MAX)


def _header_key(key: object, lineno: int) -> str:
    text = str(key)
    _utf8(text, f"line {lineno}: a header key")
    return text


_INT32_MAX, _INT64_MAX = 2**31 - 1, 2**63 - 1


def _opt_int(value: object, what: str, most: int) -> int | None:
    """An optional JSON integer in 0..``most`` (what the record format can hold)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{what} must be an integer")
    if not 0 <= value <= most:
        raise UsageError(f"{what} {value} is out of range (0 to {most}, or null)")
    return value


_TOKEN = re.compile(r"%[tpoTkKsSh%]|\\[ntr\\]")


def compile_format(fmt: str, null: bytes = b""):
    """Compile a kcat-like format: %t topic, %p partition, %o offset, %T timestamp, %k key, %K key size,
    %s value, %S value size, %h headers (k=v,...), %% percent; \\n \\t \\r escapes.  A null key, value
    or header value prints as ``null`` (kcat -Z: ``NULL``; an empty one stays empty, and %K/%S tell the
    two apart as -1 and 0).  Returns a function (topic, partition, record) -> bytes."""
    parts: list[object] = []
    pos = 0
    for m in _TOKEN.finditer(fmt):
        if m.start() > pos:
            parts.append(fmt[pos : m.start()].encode())
        tok = m.group()
        literal = {"\\n": b"\n", "\\t": b"\t", "\\r": b"\r", "\\\\": b"\\", "%%": b"%"}.get(tok)
        parts.append(literal if literal is not None else tok[1])
        pos = m.end()
    if pos < len(fmt):
        parts.append(fmt[pos:].encode())

    def render(topic: str, partition: int, rec: Record) -> bytes:
        out = []
        for part in parts:
            if isinstance(part, bytes):
                out.append(part)
            elif part == "s":
                out.append(null if rec.value is None else rec.value)
            elif part == "k":
                out.append(null if rec.key is None else rec.key)
            elif part == "o":
                out.append(str(rec.offset).encode())
            elif part == "p":
                out.append(str(partition).encode())
            elif part == "t":
                out.append(topic.encode())
            elif part == "T":
                out.append(str(rec.timestamp).encode())
            elif part == "K":
                out.append(str(-1 if rec.key is None else len(rec.key)).encode())
            elif part == "S":
                out.append(str(-1 if rec.value is None else len(rec.value)).encode())
            elif part == "h":
                out.append(b",".join(k.encode() + b"=" + (null if v is None else v) for k, v in rec.headers))
        return b"".join(out)

    return render
