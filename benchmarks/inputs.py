"""Benchmark input: lines of random letters, the same for every run with the same seed."""

from __future__ import annotations

import random
import string

_ALPHABET = (string.ascii_letters + string.digits).encode()
# byte value -> a letter or digit: turns random bytes into printable ones without a Python loop per byte
_PRINTABLE = bytes(_ALPHABET[i % len(_ALPHABET)] for i in range(256))


def write_lines(path: str, count: int, width: int = 99, seed: int = 1) -> int:
    """Write ``count`` lines of ``width`` characters plus a newline; returns the bytes written."""
    rnd = random.Random(seed)
    written = 0
    chunk = 10_000
    with open(path, "wb") as fh:
        for start in range(0, count, chunk):
            n = min(chunk, count - start)
            raw = rnd.randbytes(n * width).translate(_PRINTABLE)
            block = b"\n".join(raw[i : i + width] for i in range(0, n * width, width)) + b"\n"
            fh.write(block)
            written += len(block)
    return written


def head(src: str, dst: str, count: int) -> None:
    """Copy the first ``count`` lines of ``src`` to ``dst``."""
    with open(src, "rb") as fh, open(dst, "wb") as out:
        for i, line in enumerate(fh):
            if i >= count:
                break
            out.write(line)


def write_keyed_lines(path: str, count: int, keys: int, width: int = 99, seed: int = 1) -> int:
    """Write ``count`` lines ``KEY:VALUE`` (for ``produce -K:``), ``width`` characters each plus a newline,
    their keys drawn uniformly from ``keys`` distinct ones; returns the bytes written."""
    rnd = random.Random(seed)
    digits = len(str(max(keys - 1, 0)))
    value_width = width - digits - 2  # "k" + digits + ":"
    written = 0
    chunk = 10_000
    with open(path, "wb") as fh:
        for start in range(0, count, chunk):
            n = min(chunk, count - start)
            raw = rnd.randbytes(n * value_width).translate(_PRINTABLE)
            picks = [rnd.randrange(keys) for _ in range(n)]
            block = b"".join(
                b"k%0*d:%s\n" % (digits, k, raw[i * value_width : (i + 1) * value_width]) for i, k in enumerate(picks)
            )
            fh.write(block)
            written += len(block)
    return written
