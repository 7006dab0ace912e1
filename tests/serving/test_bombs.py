"""Decompression and parsing bombs against a real ``crispml serve``: each input is at least a
thousand times smaller than what it would unpack to (or claims to); the server refuses it
with a 4xx naming the item, its peak memory (sampled from outside while the bomb is sent)
stays within the bound docs/security.md states, and it answers a good request afterwards."""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from PIL import Image

from crispml.services import Services
from tests.models import IRIS_ROW, Trained
from tests.web.test_model_api import Api

pytestmark = [pytest.mark.server, pytest.mark.needs("torch")]

MB = 1_000_000
# The server's limits here (scaled down from the defaults, so the bombs stay small).
REQUEST_MB, IMAGE_MB, DECODED_MB = 4, 1, 100
LIMITS = {
    "CRISPML_API_MAX_REQUEST_MB": str(REQUEST_MB),
    "CRISPML_API_MAX_IMAGE_MB": str(IMAGE_MB),
    "CRISPML_API_MAX_DECODED_MB": str(DECODED_MB),
}
# What a refused request may cost beyond the bounds docs/security.md states: the interpreter,
# its allocator and the threads that serve a request (measured: 2-6 MB).
SLACK = 24 * MB


@pytest.fixture(scope="module")
def home(trained: Trained) -> tuple[Path, Services]:
    for run, name in (("iris", "iris-lr"), ("unet", "shapes-unet")):
        trained.svc.modeling.register(trained.admin, trained.runs[run], name)
        trained.svc.deployments.deploy(trained.admin, name, public=True)
    return trained.home, trained.svc


@pytest.fixture(scope="module")
def api(home: tuple[Path, Services]) -> Iterator[Api]:
    server = Api(home[0], "--public", env=LIMITS)
    yield server
    server.stop()


class Peak:
    """The server's peak resident memory above what it was at the start, sampled every
    millisecond or so from outside while the block runs."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.samples: list[int] = []
        self._stop = threading.Event()

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.rss())
            time.sleep(0.001)

    def __enter__(self) -> Peak:
        self.base = self.rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.samples.append(self.rss())

    @property
    def growth(self) -> int:
        return max(self.samples) - self.base


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def zero_png(width: int, height: int, rows: int | None = None) -> bytes:
    """A grey PNG of zeros, its pixel data deflated as it is made (never whole in memory);
    ``rows``: how many rows the data really holds (fewer than the header claims)."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    idat = bytearray()
    for _ in range(height if rows is None else rows):
        idat += compressor.compress(row)
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", bytes(idat))
        + _chunk(b"IEND", b"")
    )


def zipped(name: str, parts: Iterator[bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of one entry written part by part (the entry is never whole in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive, archive.open(name, "w") as entry:
        for part in parts:
            entry.write(part)
    return buffer.getvalue()


def zeros(total: int, step: int = 4 * MB) -> Iterator[bytes]:
    block = b"\0" * step
    for _ in range(total // step):
        yield block


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "crispml-bomb-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def good_image() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def still_serving(api: Api) -> None:
    rows = httpx.post(f"{api.url}/predict?model=iris-lr", json=[IRIS_ROW], timeout=30)
    assert rows.status_code == 200 and rows.json()["predictions"] == ["virginica"], rows.text
    body = {"images": [good_image()], "Model_path": "shapes-unet"}
    images = httpx.post(f"{api.url}/predict", json=body, timeout=60)
    assert images.status_code == 200 and len(images.json()["Responses"]) == 1, images.text
    assert api.proc.poll() is None


def send(api: Api, path: str, bound: int, **request: Any) -> tuple[httpx.Response, int]:
    """Send one request while sampling the server's memory; its growth must stay within
    ``bound`` (the documented one) plus SLACK."""
    with Peak(api.proc.pid) as peak:
        response = httpx.post(f"{api.url}{path}", timeout=120, **request)
    assert peak.growth <= bound + SLACK, (path, peak.growth, bound, response.text[:300])
    print(f"{path}: {response.status_code}, peak +{peak.growth / MB:.1f} MB (bound {bound / MB:g})")
    return response, peak.growth


def test_a_zip_of_a_huge_zero_png_is_refused_from_its_header(api: Api) -> None:
    # The bomb: one ".png" entry of 400 MB of zeros, in a zip of about 400 KB.
    bomb = zipped("zero.png", zeros(400 * MB))
    assert len(bomb) * 1000 < 400 * MB
    body, kind = multipart("file", "bomb.zip", bomb)
    # Refused from the entry's first 64 KB: it costs the zip and that.
    res, _ = send(api, "/base64", len(body), content=body, headers={"content-type": kind})
    assert res.status_code == 400, res.text
    assert "'zero.png' is not an image crispml can read" in res.json()["detail"]
    # A real PNG header (3000 x 3000, within api_max_pixels) followed by 400 MB: the entry is
    # cut at api_max_image_mb, counted as it is inflated.
    header = zero_png(3000, 3000, rows=10)
    bomb = zipped("padded.png", iter([header, *zeros(400 * MB)]))
    body, kind = multipart("file", "bomb.zip", bomb)
    bound = len(body) + IMAGE_MB * MB * 7 // 3  # the entry read, and its base64
    res, _ = send(api, "/base64", bound, content=body, headers={"content-type": kind})
    assert res.status_code == 400, res.text
    assert f"'padded.png' unpacks to more than {IMAGE_MB * MB:,} bytes" in res.json()["detail"]
    # bzip2 inflates a whole block at once (45 MB of zeros from 40 bytes): not read at all.
    bomb = zipped("zero.png", zeros(40 * MB), zipfile.ZIP_BZIP2)
    assert len(bomb) * 1000 < 40 * MB
    body, kind = multipart("file", "bomb.zip", bomb)
    res, _ = send(api, "/base64", len(body), content=body, headers={"content-type": kind})
    assert res.status_code == 400 and "only stored and deflated" in res.json()["detail"]
    still_serving(api)


def test_images_are_checked_from_their_header_before_their_pixels_are_decoded(
    api: Api,
) -> None:
    # A PNG whose header claims 100,000 x 100,000 pixels (10 GB grey, 40 GB as RGB).
    claims = base64.b64encode(zero_png(100_000, 100_000, rows=1)).decode()
    assert len(claims) * 1000 < 10**10
    body = {"images": [claims], "Model_path": "shapes-unet"}
    res, _ = send(api, "/predict", len(claims) * 2, json=body)
    assert res.status_code == 400, res.text
    assert "images[0] has 10,000,000,000 pixels, more than the 25,000,000" in res.json()["detail"]
    # A real PNG of zeros within api_max_pixels (4,800 x 4,800: 23 MB grey, 92 MB as RGB)
    # but over the decoded budget of a request (api_max_decoded_mb).
    png = zero_png(4_800, 4_800)
    assert len(png) * 1000 < 4_800 * 4_800 * 5
    body = {"images": [good_image(), base64.b64encode(png).decode()], "Model_path": "shapes-unet"}
    res, _ = send(api, "/predict", len(png) * 4, json=body)
    assert res.status_code == 400, res.text
    assert f"images[1] decode to more than {DECODED_MB * MB:,} bytes" in res.json()["detail"]
    # The same image alone fits the budget: decoded, within it.
    alone = {"images": [base64.b64encode(zero_png(3_000, 3_000)).decode()],
             "Model_path": "shapes-unet", "IMAGE_MAX_DIM": "32"}  # fmt: skip
    res, _ = send(api, "/predict", DECODED_MB * MB, json=alone)
    assert res.status_code == 200, res.text
    still_serving(api)


def test_base64_is_refused_by_its_length_before_it_is_decoded(api: Api) -> None:
    text = "A" * (IMAGE_MB * MB * 2)  # 2 MB of base64: a 1.5 MB "image" > api_max_image_mb
    body = {"images": [good_image(), text], "Model_path": "shapes-unet"}
    res, _ = send(api, "/predict", len(text) * 3, json=body)
    assert res.status_code == 400, res.text
    assert "images[1] is 2,000,000 characters of base64" in res.json()["detail"]
    still_serving(api)


def test_json_is_refused_by_its_depth_and_its_objects_before_it_is_parsed(api: Api) -> None:
    nested = b"[" * 1_000_000 + b"]" * 1_000_000  # 2 MB, a million levels
    headers = {"content-type": "application/json"}
    res, _ = send(api, "/invocations", len(nested) * 2, content=nested, headers=headers)
    assert res.status_code == 400, res.text
    assert "nested 1000000 levels deep, more than the 32 allowed" in res.json()["detail"]
    # 3.9 MB of empty objects: 1.3 million dicts, about 100 MB once parsed (25 times the body).
    objects = b'{"dataframe_records": [' + b"{}," * 1_300_000 + b"{}]}"
    res, _ = send(api, "/invocations", len(objects) * 2, content=objects, headers=headers)
    assert res.status_code == 400, res.text
    assert "once parsed: more than the 100,000,000 allowed" in res.json()["detail"]
    config, kind = multipart("file", "c.json", b'{"a":' * 500 + b"1" + b"}" * 500)
    res, _ = send(api, "/configs", len(config) * 2, content=config, headers={"content-type": kind})
    assert res.status_code == 400 and "configuration file is nested" in res.json()["detail"]
    still_serving(api)


def test_the_request_limit_counts_a_chunked_body_as_it_arrives(api: Api) -> None:
    data = zipped("zero.png", zeros(4 * MB)) + b"\1" * (int(3.6 * REQUEST_MB * MB))
    body, kind = multipart("file", "big.zip", data)

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    res, _ = send(api, "/base64", REQUEST_MB * MB, content=chunks(), headers={"content-type": kind})
    assert res.status_code == 413, res.text
    assert res.json()["detail"] == (
        f"The request is larger than {REQUEST_MB * MB:,} bytes (api_max_request_mb)."
    )
    # A declared length over the limit is refused before the body is read.
    res = httpx.post(f"{api.url}/invocations", content=body, headers={"content-type": kind})
    assert res.status_code == 413 and "api_max_request_mb" in res.json()["detail"]
    still_serving(api)


def test_a_good_zip_still_converts(api: Api, home: tuple[Path, Services]) -> None:
    images = sorted((home[0] / "datasets").glob("*/images/*.png"))[:3]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in images:
            archive.write(path, f"pictures/{path.name}")
        archive.writestr("notes.txt", "not an image: skipped")
    files = {"file": ("images.zip", buffer.getvalue())}
    res = httpx.post(f"{api.url}/base64", files=files, timeout=30)
    assert res.status_code == 200, res.text
    assert [base64.b64decode(s) for s in res.json()] == [p.read_bytes() for p in images]
