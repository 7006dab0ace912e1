"""The model API's limits, and the decoders of its untrusted input, each bounded before it
allocates: the request body (counted as it arrives), JSON (size, nesting depth, objects),
base64 (length), images (format and dimensions from the header, then a decoded-size budget)
and zips (entries from the directory, methods, and bytes counted per entry and in all while
they are unpacked, an entry's image header checked before the rest is inflated).

docs/security.md ("Limits") states each limit, its setting, default and memory bound.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import zipfile
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Any, cast

from crispml.core.errors import InvalidInput

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from PIL import Image, ImageFile

    from crispml.settings import Settings

MB = 1_000_000
IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
# Bytes per pixel PIL keeps for a decoded image of each mode (RGB is stored in 4 bytes).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 4, "PA": 4, "I;16": 2, "I;16B": 2, "I;16L": 2}
RGB_BYTES = 4
# Estimated parsed size of JSON: per container (a dict or list, and the row dict it may become)
# and per value (a float, an int, a slot), beyond the bytes of its strings.
JSON_CONTAINER_BYTES = 200
JSON_VALUE_BYTES = 40


@dataclass(frozen=True)
class ApiLimits:
    max_request_bytes: int = 50 * MB
    max_images: int = 64
    max_pixels: int = 25_000_000
    max_image_bytes: int = 20 * MB
    max_decoded_bytes: int = 200 * MB
    max_json_depth: int = 32
    zip_max_entries: int = 1_000
    zip_max_bytes: int = 50 * MB
    timeout_s: float = 60.0

    @property
    def max_base64_chars(self) -> int:
        return 4 * math.ceil(self.max_image_bytes / 3)

    @property
    def max_form_part_bytes(self) -> int:
        """A form field or file: an image's base64 and a little more, within the request."""
        return min(self.max_request_bytes, self.max_base64_chars + 4096)

    @property
    def max_form_files(self) -> int:
        """The files of a form: the images of a request and a few more."""
        return self.max_images + 8

    @property
    def too_large(self) -> str:
        """The 413's message."""
        return f"The request is larger than {self.max_request_bytes:,} bytes."


def api_limits(settings: Settings) -> ApiLimits:
    request = settings.api_max_request_mb * MB
    return ApiLimits(
        max_request_bytes=request,
        max_images=settings.api_max_images,
        max_pixels=settings.api_max_pixels,
        max_image_bytes=settings.api_max_image_mb * MB,
        max_decoded_bytes=settings.api_max_decoded_mb * MB,
        max_json_depth=settings.api_max_json_depth,
        zip_max_entries=settings.zip_max_entries,
        # /base64 answers with every image as base64: what a zip unpacks to is bounded by
        # the request limit too, not only by extraction's (far larger) zip_max_bytes.
        zip_max_bytes=min(settings.zip_max_bytes, request),
        timeout_s=settings.api_timeout.total_seconds(),
    )


# --- the request body ------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised from ``receive`` once a body passes the limit (the 413 is already sent)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.status_code = 413
        self.detail = message


class BodyLimit:
    """Pure ASGI middleware: a request body larger than ``max_bytes`` gets a 413 with a JSON
    ``{"detail": ...}``, counted as the body arrives (a chunked body too, which declares no
    length), so no route buffers more than the limit. A declared Content-Length over the
    limit is refused before the app runs. ``paths``: only requests under these path prefixes
    (all when empty)."""

    def __init__(
        self, app: App, max_bytes: int, setting: str = "", paths: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths
        named = f" ({setting})" if setting else ""
        self.message = f"The request is larger than {max_bytes:,} bytes{named}."

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": self.message}).encode()
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    def _declares_too_much(self, scope: Scope) -> bool:
        """A Content-Length over the limit: refused before the app runs."""
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self.paths and not str(scope.get("path", "")).startswith(self.paths)
        ):
            await self.app(scope, receive, send)
            return
        if self._declares_too_much(scope):
            await self._refuse(send)
            return
        received = 0
        started = False
        refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                raise BodyTooLarge(self.message)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    raise BodyTooLarge(self.message)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:  # the 413 went out; what the app answers to the exception does not
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not refused:
                raise


# --- JSON ------------------------------------------------------------------------------------

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _depth(bare: bytes) -> int:
    """The deepest nesting of brackets in JSON whose strings were emptied (in slices, so its
    arrays stay a few MB whatever the size)."""
    import numpy as np

    steps = np.zeros(256, dtype=np.int8)
    steps[[ord("["), ord("{")]] = 1
    steps[[ord("]"), ord("}")]] = -1
    deepest, level, size = 0, 0, 1 << 18
    for start in range(0, len(bare), size):
        chunk = np.frombuffer(bare, dtype=np.uint8, count=min(size, len(bare) - start),
                              offset=start)  # fmt: skip
        levels = np.cumsum(steps[chunk], dtype=np.int64) + level
        deepest = max(deepest, int(levels.max()))
        level = int(levels[-1])
    return deepest


def parse_json(data: bytes, what: str, limits: ApiLimits) -> object:
    """JSON within the limits: its nesting depth and its estimated parsed size are checked on
    a scan (C speed, strings skipped) before it is parsed. Of any shape: the caller checks."""
    if len(data) > limits.max_request_bytes:
        raise InvalidInput(f"{what} is larger than {limits.max_request_bytes:,} bytes.")
    bare = _STRING.sub(b'""', data)
    depth = _depth(bare)
    if depth > limits.max_json_depth:
        raise InvalidInput(
            f"{what} is nested {depth} levels deep, more than the {limits.max_json_depth} "
            "allowed (api_max_json_depth)."
        )
    containers = bare.count(b"[") + bare.count(b"{")
    values = bare.count(b",") + bare.count(b":") + 1
    estimate = containers * JSON_CONTAINER_BYTES + values * JSON_VALUE_BYTES + len(data)
    if estimate > limits.max_decoded_bytes:
        raise InvalidInput(
            f"{what} holds {containers:,} objects and lists and {values:,} values, about "
            f"{estimate:,} bytes once parsed: more than the {limits.max_decoded_bytes:,} "
            "allowed (api_max_decoded_mb)."
        )
    del bare
    try:
        parsed: object = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"{what} is not JSON ({exc}).") from None
    return parsed


# --- base64 and images -----------------------------------------------------------------------


def decode_base64(text: str, index: int, limits: ApiLimits) -> bytes:
    if "," in text[:100] and text.startswith("data:"):
        text = text.split(",", 1)[1]
    if len(text) > limits.max_base64_chars + 64:  # a little room for surrounding whitespace
        raise InvalidInput(
            f"images[{index}] is {len(text):,} characters of base64, more than the "
            f"{limits.max_base64_chars:,} of a {limits.max_image_bytes:,}-byte image "
            "(api_max_image_mb)."
        )
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"images[{index}] is not valid base64.") from None


def decoded_bytes(picture: Image.Image) -> int:
    """Memory an image takes decoded, in its mode and then as RGB."""
    width, height = picture.size
    return int(width * height * (_MODE_BYTES.get(picture.mode, 4) + RGB_BYTES))


def open_image(source: IO[bytes], what: str, limits: ApiLimits) -> ImageFile.ImageFile:
    """The image's header only (PIL reads no pixels yet): one of the image formats, within
    ``max_pixels``. ``what`` names the item in messages."""
    from PIL import Image, UnidentifiedImageError

    try:
        picture = Image.open(source, formats=IMAGE_FORMATS)
    except UnidentifiedImageError:
        raise InvalidInput(
            f"{what} is not an image crispml can read (not {', '.join(IMAGE_FORMATS)})."
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidInput(f"{what} is not an image crispml can read ({exc}).") from None
    except Image.DecompressionBombError as exc:  # PIL's own cap, far above ours
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(claimed[1]):,}" if claimed else "too many"
        raise InvalidInput(
            f"{what} has {pixels} pixels, more than the {limits.max_pixels:,} allowed."
        ) from None
    width, height = picture.size
    if width * height > limits.max_pixels:
        raise InvalidInput(
            f"{what} has {width}x{height} pixels, more than the {limits.max_pixels:,} allowed."
        )
    return picture


def decode_image(text: str, index: int, limits: ApiLimits, budget: float = math.inf) -> Image.Image:
    """A base64 image as RGB: its length, format, dimensions and decoded size are checked
    before its pixels are decoded; ``budget``: bytes the request's images may still take."""
    from PIL import Image

    raw = decode_base64(text, index, limits)
    if len(raw) > limits.max_image_bytes:
        raise InvalidInput(
            f"images[{index}] is {len(raw):,} bytes, more than the {limits.max_image_bytes:,} "
            "allowed (api_max_image_mb)."
        )
    what = f"images[{index}]"
    picture = open_image(io.BytesIO(raw), what, limits)
    if decoded_bytes(picture) > min(budget, limits.max_decoded_bytes):
        raise InvalidInput(
            f"The images up to {what} decode to more than {limits.max_decoded_bytes:,} bytes "
            "in all (api_max_decoded_mb)."
        )
    try:
        picture.load()
        return picture.convert("RGB")
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"{what} is not an image crispml can read ({exc}).") from None


# --- zips ------------------------------------------------------------------------------------


class _Counted:
    """An entry's stream, counted as it is inflated: past ``per_entry`` or ``remaining``
    bytes, the entry is refused (not as the zip claims: as it really unpacks)."""

    def __init__(self, stream: IO[bytes], name: str, per_entry: int, remaining: int,
                 total: int) -> None:  # fmt: skip
        self.stream, self.name = stream, name
        self.per_entry, self.remaining, self.total = per_entry, remaining, total
        self.count = 0

    def read(self, size: int) -> bytes:
        chunk = self.stream.read(size)
        self.count += len(chunk)
        if self.count > self.remaining:
            raise InvalidInput(
                f"The zip unpacks to more than {self.total:,} bytes (at '{self.name}')."
            )
        if self.count > self.per_entry:
            raise InvalidInput(
                f"The zip entry '{self.name}' unpacks to more than {self.per_entry:,} bytes "
                "(api_max_image_mb)."
            )
        return chunk


class _Head(io.RawIOBase):
    """What PIL reads of an entry to parse its header, kept (so nothing is inflated twice)
    and seekable within what was read; reading on pulls more through the counter."""

    def __init__(self, source: _Counted) -> None:
        self.source = source
        self.buffer = bytearray()
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _fill(self, end: float) -> None:
        while len(self.buffer) < end:
            chunk = self.source.read(1 << 16)
            if not chunk:
                return
            self.buffer += chunk

    def read(self, size: int | None = -1) -> bytes:
        end = math.inf if size is None or size < 0 else self.position + size
        self._fill(end)
        data = bytes(self.buffer[self.position : int(min(end, len(self.buffer)))])
        self.position += len(data)
        return data

    def readinto(self, target: WriteableBuffer) -> int:
        with memoryview(target) as view, view.cast("B") as octets:
            data = self.read(len(octets))
            octets[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == io.SEEK_END:
            self._fill(math.inf)
            offset += len(self.buffer)
        elif whence == io.SEEK_CUR:
            offset += self.position
        self.position = max(0, offset)
        return self.position

    def tell(self) -> int:
        return self.position


def _check_directory(fp: IO[bytes], limits: ApiLimits) -> None:
    """The entry count from the end record, before zipfile reads the whole directory."""
    end = getattr(zipfile, "_EndRecData", None)
    if end is None:
        return
    try:
        record = end(fp)
    except OSError:
        record = None
    if not record:
        raise InvalidInput("The file is not a zip archive.")
    entries = int(record[4])  # _ECD_ENTRIES_TOTAL
    if entries > limits.zip_max_entries:
        raise InvalidInput(
            f"The zip has {entries} entries, more than the {limits.zip_max_entries} allowed."
        )
    fp.seek(0)


def zip_images_json(source: bytes | IO[bytes], limits: ApiLimits) -> bytearray:
    """A zip's images as a JSON list of base64 strings (the bytes of the answer itself):
    each image entry is streamed, its header checked before the rest is inflated, and
    encoded chunk by chunk, so an entry is never whole in memory but as base64 in the answer."""
    fp = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    _check_directory(fp, limits)
    try:
        archive = zipfile.ZipFile(fp)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise InvalidInput("The file is not a zip archive.") from None
    entries = [e for e in archive.infolist() if not e.is_dir()]
    if len(entries) > limits.zip_max_entries:
        raise InvalidInput(
            f"The zip has {len(entries)} entries, more than the {limits.zip_max_entries} allowed."
        )
    out = bytearray(b"[")
    total = 0
    found = 0
    for entry in sorted(entries, key=lambda e: e.filename):
        path = PurePosixPath(entry.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts:
            raise InvalidInput(f"The zip entry '{entry.filename}' points outside the folder.")
        if path.suffix.lower() not in IMAGE_TYPES or path.name.startswith("."):
            continue
        if entry.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # bzip2 and LZMA inflate a whole block at once: no bound while reading.
            raise InvalidInput(
                f"The zip entry '{entry.filename}' is compressed with method "
                f"{entry.compress_type}; only stored and deflated entries are read."
            )
        try:
            with archive.open(entry) as stream:
                counted = _Counted(stream, entry.filename, limits.max_image_bytes,
                                   limits.zip_max_bytes - total, limits.zip_max_bytes)  # fmt: skip
                head = _Head(counted)
                open_image(cast(IO[bytes], head), f"The zip entry '{entry.filename}'", limits)
                out += b'"' if found == 0 else b',"'
                pending = head.buffer
                while True:
                    usable = len(pending) - len(pending) % 3
                    out += binascii.b2a_base64(pending[:usable], newline=False)
                    del pending[:usable]
                    chunk = counted.read(1 << 16)
                    if not chunk:
                        break
                    pending += chunk
                out += binascii.b2a_base64(pending, newline=False) + b'"'
                total += counted.count
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise InvalidInput(f"The zip entry '{entry.filename}' is damaged ({exc}).") from None
        found += 1
    if not found:
        raise InvalidInput("The zip holds no image (png, jpg, bmp, gif, webp or tif).")
    out += b"]"
    return out
