"""/files/...: content types, downloads, sandboxing, zips, and refusals, on a real server."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.helpers import USER_PASSWORD, Server

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def files(server: Server) -> Server:
    root = server.home / "users" / "admin" / "files"
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "iris.csv").write_text("a,b\n1,2\n")
    (root / "page.html").write_text("<script>alert(document.cookie)</script>")
    (root / "image.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>'
    )
    (root / "naïve name.txt").write_text("unicode")
    for name in ("feed.atom", "style.xsl", "data.rdf", "formula.mml", "news.rss", "page.xhtml"):
        (root / name).write_text('<x xmlns="http://www.w3.org/1999/xhtml"><script>1</script></x>')
    (root / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    server.add_user("mallory")
    return server


def test_files_open_with_their_type_and_download_on_request(files: Server) -> None:
    with files.client() as client:
        files.login(client)
        csv = client.get("/files/~admin/data/iris.csv")
        assert csv.status_code == 200
        assert csv.headers["content-type"].startswith("text/plain")  # shown, never run
        assert csv.headers["content-disposition"].startswith("inline")
        assert csv.headers["x-content-type-options"] == "nosniff"
        assert csv.text == "a,b\n1,2\n"
        download = client.get("/files/~admin/data/iris.csv?download=1")
        assert download.headers["content-disposition"].startswith("attachment")
        unicode = client.get("/files/~admin/na%C3%AFve%20name.txt?download=1")
        assert "filename*=UTF-8''na%C3%AFve%20name.txt" in unicode.headers["content-disposition"]


@pytest.mark.parametrize(
    "path",
    [
        "page.html",
        "image.svg",
        "feed.atom",
        "style.xsl",
        "data.rdf",
        "formula.mml",
        "news.rss",
        "page.xhtml",
    ],
)
def test_active_content_is_a_sandboxed_download(files: Server, path: str) -> None:
    """Anything a browser could run (every XML flavour the host's mime.types knows included)
    is a download, typed as opaque bytes, under a sandbox CSP: it cannot script our origin."""
    with files.client() as client:
        files.login(client)
        response = client.get(f"/files/~admin/{path}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"].startswith("attachment")
        assert response.headers["content-security-policy"].startswith("sandbox")


def test_passive_types_open_inline(files: Server) -> None:
    with files.client() as client:
        files.login(client)
        png = client.get("/files/~admin/chart.png")
        assert png.headers["content-type"] == "image/png"
        assert png.headers["content-disposition"].startswith("inline")


def test_folders_download_as_a_streamed_zip(files: Server) -> None:
    with files.client() as client:
        files.login(client)
        assert client.get("/files/~admin/data").status_code == 400
        response = client.get("/files/~admin/data?zip=1")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        assert "transfer-encoding" in response.headers  # streamed, no precomputed length
        with zipfile.ZipFile(io.BytesIO(response.content)) as z:
            assert z.read("iris.csv") == b"a,b\n1,2\n"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/files/~admin/..%2F..%2Fsecret_key", 400),
        ("/files/~admin/data/%2E%2E/%2E%2E/x", 400),
        ("/files/~admin/missing.txt", 404),
        ("/files/~..%2Fadmin/x", 404),
        ("/files/nope/x", 404),
        ("/files/~admin/a%00b", 400),
    ],
)
def test_bad_paths_get_a_readable_4xx(files: Server, path: str, status: int) -> None:
    with files.client() as client:
        files.login(client)
        response = client.get(path)
        assert response.status_code == status, response.text
        assert "Traceback" not in response.text
        assert client.get("/healthz").status_code == 200


def test_another_user_cannot_reach_my_files(files: Server) -> None:
    with files.client() as client:
        files.login(client, "mallory", "lilac-harbor-93")
        refused = client.get("/files/~admin/data/iris.csv")
        assert refused.status_code == 403
        assert "a,b" not in refused.text
        assert client.get("/files/~admin/data?zip=1").status_code == 403
        assert client.get("/files/~mallory/").status_code == 400  # own root: a folder, fine
    with files.client() as anonymous:
        assert anonymous.get("/files/~admin/data/iris.csv").status_code == 401


def test_the_license_and_notices_open_through_the_same_route(files: Server) -> None:
    with files.client() as client:
        files.login(client, "mallory", USER_PASSWORD)  # any logged-in user
        license_text = client.get("/files/about/LICENSE")
        assert license_text.status_code == 200
        assert license_text.headers["content-disposition"].startswith("inline")
        assert license_text.headers["content-type"].startswith("text/plain")
        repo_license = (Path(__file__).parents[2] / "LICENSE").read_text()
        assert license_text.text == repo_license
        notices = client.get("/files/about/THIRD-PARTY-NOTICES.txt")
        assert notices.status_code == 200 and "streamlit" in notices.text.lower()
        assert client.get("/files/about/secret_key").status_code == 404
    with files.client() as anonymous:
        assert anonymous.get("/files/about/LICENSE").status_code == 401
