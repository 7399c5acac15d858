"""``tbox decode`` / ``tbox encode``: GB/T 32960 frames (hex) to JSON objects and back.

Both verbs keep going past a bad frame or object: each failure is reported on stderr as one line
(``tbox decode: line 3: offset 31, realtime.time.month: ...``) and the exit code is 1 if any failed.
The JSON form is described in docs/cli.md and implemented by ``agent.protocol.jsonform``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from agent.protocol.errors import ProtocolError, TboxError
from agent.protocol.jsonform import frame_from_json, frame_to_json
from agent.protocol.model import Encryption, Frame, Opaque

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def register(sub: Any) -> None:
    """Add the ``decode`` and ``encode`` verbs to the ``tbox`` sub-command parser."""
    decode = sub.add_parser(
        "decode",
        help="GB/T 32960 frames (hex) -> JSON, one object per line",
        description=(
            "Decode hex frames given as arguments, or one per stdin line (spaces and an 0x prefix"
            " allowed, blank lines skipped). Prints one JSON object per frame; a bad frame is reported"
            " on stderr and decoding continues; exit status 1 if any frame failed."
        ),
    )
    decode.add_argument("frames", nargs="*", metavar="HEX", help="frames in hex (default: read stdin)")
    decode.add_argument("--pretty", action="store_true", help="indented JSON (tbox encode reads it too)")
    decode.add_argument(
        "--no-bcc-check", dest="check_bcc", action="store_false", help="decode frames whose BCC is wrong"
    )
    _add_key_option(decode, "decrypt AES/SM4 data units with this key (otherwise they stay opaque)")
    decode.set_defaults(run=run_decode)

    encode = sub.add_parser(
        "encode",
        help="JSON objects (as printed by tbox decode) -> GB/T 32960 frames in hex",
        description=(
            "Encode JSON frame objects given as arguments, or read from stdin as a stream of JSON"
            " values (one per line, or indented). Prints one uppercase hex frame per line; a bad object"
            " is reported on stderr and encoding continues; exit status 1 if any object failed."
        ),
    )
    encode.add_argument("objects", nargs="*", metavar="JSON", help="frame objects (default: read stdin)")
    encode.add_argument(
        "--strict",
        action="store_true",
        help="reject values outside the standard's ranges and codes it does not define",
    )
    _add_key_option(encode, "encrypt data units of frames whose encryption is aes/sm4 with this key")
    encode.set_defaults(run=run_encode)


def _add_key_option(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--key", metavar="HEX", help=text + " (16, 24 or 32 bytes in hex)")


def _parse_key(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        key = parse_hex(text)
    except ProtocolError as exc:
        raise ProtocolError(exc.reason, None, "--key") from None
    if len(key) not in (16, 24, 32):
        raise ProtocolError(f"a key is 16, 24 or 32 bytes, got {len(key)}", None, "--key")
    return key


def _cipher(encryption: int, key: bytes | None) -> Any:
    """The AES/SM4 cipher for ``encryption`` when a key was given, else None."""
    if key is None or encryption not in (Encryption.AES, Encryption.SM4):
        return None
    crypto = importlib.import_module("agent.protocol.crypto")
    return crypto.cipher_for(encryption, key=key)


def _codec() -> Any:
    try:
        return importlib.import_module("agent.protocol.codec")
    except ModuleNotFoundError as exc:
        if exc.name != "agent.protocol.codec":
            raise
        raise TboxError("the GB/T 32960 codec (agent.protocol.codec) is not installed") from exc


# --------------------------------------------------------------------------- decode


def parse_hex(text: str) -> bytes:
    """Bytes of a hex frame: whitespace ignored, optional ``0x`` prefix; ``ProtocolError`` if not hex."""
    compact = "".join(text.split())
    if compact[:2] in ("0x", "0X"):
        compact = compact[2:]
    bad = next((index for index, char in enumerate(compact) if char not in _HEX_DIGITS), None)
    if bad is not None:
        raise ProtocolError(f"not a hex digit: {compact[bad]!r} at character {bad}", None, "hex")
    if len(compact) % 2:
        raise ProtocolError(f"odd number of hex digits ({len(compact)})", None, "hex")
    return bytes.fromhex(compact)


def decode_hex(text: str, *, check_bcc: bool = True, key: bytes | None = None) -> dict[str, Any]:
    """The JSON object of one hex frame (``ProtocolError`` naming offset and field if malformed).

    ``key`` decrypts AES/SM4 data units; without it they decode as ``opaque``.
    """
    codec = _codec()
    data = parse_hex(text)
    options = codec.CodecOptions(check_bcc=check_bcc)
    cipher = _cipher(data[21], key) if len(data) > 21 else None
    frame: Frame = codec.decode_frame(data, cipher=cipher, options=options)
    return frame_to_json(frame, length=len(data) - 25)


def _hex_inputs(args: argparse.Namespace, stdin: TextIO) -> Iterator[tuple[str, str]]:
    if args.frames:
        for index, text in enumerate(args.frames, 1):
            yield f"argument {index}", text
        return
    for number, line in enumerate(stdin, 1):
        if line.strip():
            yield f"line {number}", line


def run_decode(args: argparse.Namespace) -> int:
    """``tbox decode``: print one JSON object per frame; 1 if any frame failed."""
    indent = 2 if args.pretty else None
    key = _parse_key(args.key)
    failed = 0
    for where, text in _hex_inputs(args, sys.stdin):
        try:
            obj = decode_hex(text, check_bcc=args.check_bcc, key=key)
        except TboxError as exc:
            failed += 1
            _report("decode", where, exc)
            continue
        if not _emit(json.dumps(obj, ensure_ascii=False, indent=indent)):
            break
    return 1 if failed else 0


# --------------------------------------------------------------------------- encode


def encode_object(obj: object, *, strict: bool = False, key: bytes | None = None) -> str:
    """Uppercase hex of the frame a JSON frame object describes.

    ``key`` encrypts the data unit of an aes/sm4 frame whose ``data`` is not ``opaque``.
    """
    codec = _codec()
    frame = frame_from_json(obj)
    cipher = None if isinstance(frame.body, Opaque) else _cipher(int(frame.encryption), key)
    data: bytes = codec.encode_frame(frame, cipher=cipher, options=codec.CodecOptions(strict=strict))
    return data.hex().upper()


def iter_json_values(text: str) -> Iterator[tuple[int, object | ProtocolError]]:
    """(line number, value) for each JSON value in ``text``, concatenated or one per line.

    A syntax error yields a ``ProtocolError`` in place of the value; reading resumes at the next line
    that starts with ``{`` or ``[`` in its first column (a new compact or indented object).
    """
    decoder = json.JSONDecoder()
    pos = 0
    size = len(text)
    line, counted = 1, 0  # line number of position ``counted`` (counted incrementally: O(n) overall)
    while True:
        while pos < size and text[pos].isspace():
            pos += 1
        if pos >= size:
            return
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield line, ProtocolError(f"bad JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
            pos = _resync(text, pos)
            continue
        yield line, value
        pos = end


def _resync(text: str, pos: int) -> int:
    index = text.find("\n", pos)
    while index != -1:
        if text[index + 1 : index + 2] in ("{", "["):
            return index + 1
        index = text.find("\n", index + 1)
    return len(text)


def _json_inputs(args: argparse.Namespace, stdin: TextIO) -> Iterable[tuple[str, object]]:
    if args.objects:
        for index, text in enumerate(args.objects, 1):
            for line, value in iter_json_values(text):
                suffix = f" line {line}" if "\n" in text.strip() else ""
                yield f"argument {index}{suffix}", value
        return
    for line, value in iter_json_values(stdin.read()):
        yield f"line {line}", value


def run_encode(args: argparse.Namespace) -> int:
    """``tbox encode``: print one hex frame per JSON object (a JSON array counts as its items)."""
    key = _parse_key(args.key)
    failed = 0
    for where, value in _json_inputs(args, sys.stdin):
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            label = f"{where} item {index}" if isinstance(value, list) else where
            try:
                if isinstance(item, ProtocolError):
                    raise item
                text = encode_object(item, strict=args.strict, key=key)
            except TboxError as exc:
                failed += 1
                _report("encode", label, exc)
                continue
            if not _emit(text):
                return 1 if failed else 0
    return 1 if failed else 0


def _emit(line: str) -> bool:
    """Print one output line; False when the reader has gone (``tbox decode ... | head``)."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        # stop quietly, and keep the interpreter's final flush of stdout from failing again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return False
    return True


def _report(verb: str, where: str, exc: BaseException) -> None:
    message = " ".join(str(exc).split())
    print(f"tbox {verb}: {where}: {message}", file=sys.stderr, flush=True)
