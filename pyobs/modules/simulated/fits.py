"""A minimal FITS writer and reader (primary HDU with one image) on NumPy, so the package needs no astropy.

Follows the FITS standard 4.0: the header is a sequence of 80-character ASCII cards padded with spaces to
a multiple of 2880 bytes and closed by ``END``; the data follow big-endian, padded with zeros to a multiple
of 2880 bytes; unsigned 16-bit data are stored as signed with ``BZERO = 32768``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    import numpy as np
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("the simulated modules need NumPy: pip install 'pyobs-comm[sim]'") from exc

BLOCK = 2880
CARD = 80

#: header values: a value or (value, comment)
HeaderValue = bool | int | float | str | None
Header = Mapping[str, HeaderValue | tuple[HeaderValue, str]]

_KEY = re.compile(r"^[A-Z0-9_-]{1,8}$")
_BITPIX = {
    np.dtype(np.uint8): 8,
    np.dtype(np.int16): 16,
    np.dtype(np.int32): 32,
    np.dtype(np.int64): 64,
    np.dtype(np.float32): -32,
    np.dtype(np.float64): -64,
}
_DTYPE = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
#: keywords the writer sets itself
_STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "BZERO", "BSCALE", "END"}


def _format_value(key: str, value: HeaderValue) -> str:
    """The value field of a card (columns 11 to 30 for fixed format)."""
    if value is None:
        return " " * 20
    if isinstance(value, bool):
        return f"{'T' if value else 'F':>20}"
    if isinstance(value, int):
        return f"{value:>20d}"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"FITS header {key}: {value} cannot be stored (FITS has no NaN/Inf in headers)")
        text = repr(value).upper()
        if len(text) > 20:
            text = f"{value:.15G}"
        if "." not in text:  # a decimal point makes the type unambiguous for every reader
            mantissa, e, exponent = text.partition("E")
            text = f"{mantissa}.0{e}{exponent}"
        return f"{text:>20}"
    if isinstance(value, str):
        if not value.isascii() or any(ord(c) < 32 or ord(c) > 126 for c in value):
            raise ValueError(f"FITS header {key}: string must be printable ASCII, got {value!r}")
        quoted = "'" + f"{value.replace(chr(39), chr(39) * 2):<8}" + "'"
        if len(quoted) > 70:
            raise ValueError(f"FITS header {key}: string of {len(value)} characters is too long for one card")
        return f"{quoted:<20}"
    raise ValueError(f"FITS header {key}: unsupported value type {type(value).__name__}")


def format_card(key: str, value: HeaderValue, comment: str = "") -> str:
    """One 80-character header card ``KEY     = value / comment``."""
    key = key.upper()
    if not _KEY.match(key):
        raise ValueError(f"invalid FITS keyword {key!r}: 1-8 characters of A-Z, 0-9, '-' and '_'")
    if not comment.isascii():
        raise ValueError(f"FITS header {key}: comment must be ASCII")
    card = f"{key:<8}= {_format_value(key, value)}"
    if comment:
        card += f" / {comment}"
    return f"{card[:CARD]:<{CARD}}"


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % BLOCK)


def encode_fits(data: Any, header: Header | None = None) -> bytes:
    """The bytes of a FITS file holding the 2-D (or N-D) array ``data`` and the extra ``header`` cards."""
    arr = np.asarray(data)
    if arr.ndim == 0:
        raise ValueError("FITS image data must have at least one axis")
    bzero: int | None = None
    if arr.dtype == np.uint16:
        arr, bzero = (arr.astype(np.int32) - 32768).astype(np.int16), 32768
    elif arr.dtype == np.uint32:
        arr, bzero = (arr.astype(np.int64) - 2**31).astype(np.int32), 2**31
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    bitpix = _BITPIX.get(arr.dtype.newbyteorder("="))
    if bitpix is None:
        raise ValueError(f"no FITS type for arrays of {arr.dtype}")
    cards = [
        format_card("SIMPLE", True, "conforms to FITS standard"),
        format_card("BITPIX", bitpix, "array data type"),
        format_card("NAXIS", arr.ndim, "number of array dimensions"),
    ]
    # FITS counts axes fastest first: NAXIS1 is the last NumPy axis
    for i, n in enumerate(reversed(arr.shape), start=1):
        cards.append(format_card(f"NAXIS{i}", int(n)))
    if bzero is not None:
        cards.append(format_card("BZERO", bzero, "offset of unsigned integers"))
        cards.append(format_card("BSCALE", 1, "default scaling factor"))
    for key, entry in (header or {}).items():
        if key.upper() in _STRUCTURAL or re.fullmatch(r"NAXIS\d*", key.upper()):
            raise ValueError(f"FITS header {key}: structural keyword is set by the writer")
        value, comment = entry if isinstance(entry, tuple) else (entry, "")
        cards.append(format_card(key, value, comment))
    cards.append(f"{'END':<{CARD}}")
    head = _pad("".join(cards).encode("ascii"), b" ")
    body = _pad(np.ascontiguousarray(arr).astype(_DTYPE[bitpix]).tobytes(), b"\0")
    return head + body


def write_fits(path: str | Path, data: Any, header: Header | None = None) -> None:
    """Write ``data`` with ``header`` to a FITS file at ``path`` (written to a temporary name, then renamed,
    so readers never see a half-written file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(encode_fits(data, header))
    tmp.replace(path)


def _parse_value(text: str) -> HeaderValue:
    text = text.strip()
    if not text:
        return None
    if text.startswith("'"):
        # a quoted string: '' is an escaped quote; trailing spaces are not significant
        out, i = [], 1
        while i < len(text):
            if text[i] == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(text[i])
            i += 1
        return "".join(out).rstrip()
    value = text.split("/", 1)[0].strip()
    if value == "T":
        return True
    if value == "F":
        return False
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value.replace("D", "E"))
    except ValueError:
        raise ValueError(f"cannot parse FITS header value {value!r}") from None


def decode_fits(raw: bytes) -> tuple[Any, dict[str, HeaderValue]]:
    """Parse the primary HDU of a FITS file: (data array, header values). Unsigned data come back unsigned."""
    header: dict[str, HeaderValue] = {}
    pos, ended = 0, False
    while not ended:
        if pos + BLOCK > len(raw):
            raise ValueError("FITS header has no END card (file truncated?)")
        block = raw[pos : pos + BLOCK].decode("ascii", errors="replace")
        pos += BLOCK
        for i in range(0, BLOCK, CARD):
            card = block[i : i + CARD]
            key = card[:8].strip()
            if key == "END":
                ended = True
                break
            if card[8:10] == "= ":
                header[key] = _parse_value(card[10:])
    if header.get("SIMPLE") is not True:
        raise ValueError("not a FITS file: first card is not SIMPLE = T")
    bitpix, naxis = header.get("BITPIX"), header.get("NAXIS")
    if bitpix not in _DTYPE or not isinstance(naxis, int):
        raise ValueError(f"unsupported BITPIX {bitpix!r} or NAXIS {naxis!r}")
    shape = tuple(int(header[f"NAXIS{i}"]) for i in range(naxis, 0, -1))  # type: ignore[arg-type]
    count = int(np.prod(shape)) if shape else 0
    nbytes = count * abs(int(bitpix)) // 8  # type: ignore[call-overload]
    if pos + nbytes > len(raw):
        raise ValueError(f"FITS data truncated: need {nbytes} bytes, have {len(raw) - pos}")
    data = np.frombuffer(raw, dtype=_DTYPE[int(bitpix)], count=count, offset=pos).reshape(shape)  # type: ignore[call-overload]
    bzero, bscale = header.get("BZERO", 0), header.get("BSCALE", 1)
    if bitpix == 16 and bzero == 32768 and bscale == 1:
        data = (data.astype(np.int32) + 32768).astype(np.uint16)
    elif bitpix == 32 and bzero == 2**31 and bscale == 1:
        data = (data.astype(np.int64) + 2**31).astype(np.uint32)
    elif bzero or bscale != 1:
        data = data.astype(np.float64) * float(bscale) + float(bzero)  # type: ignore[arg-type]
    else:
        data = data.astype(data.dtype.newbyteorder("="))
    return data, header


def read_fits(path: str | Path) -> tuple[Any, dict[str, HeaderValue]]:
    """Read the primary image of the FITS file at ``path``: (data array, header values)."""
    return decode_fits(Path(path).read_bytes())
