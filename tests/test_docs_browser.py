"""/api/docs works with no internet: the page loads its assets from
the service only, and headless Chromium, with every host but 127.0.0.1
unresolvable, renders the operations. The screenshot is kept as
artifacts/docs.png."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"  # gitignored
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium (/usr/bin/chromium): apt-get install chromium",
)


def test_docs_page_loads_its_assets_from_the_service(client: FlaskClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    links = re.findall(r'(?:src|href)="([^"]+)"', page.get_data(as_text=True))
    assert links, "the page loads no script or style?"
    for link in links:
        assert link.startswith("/"), f"{link} is not served by the service"
        asset = client.get(link)
        asset.close()  # a file response
        assert asset.status_code == 200, link
        assert asset.content_length and asset.content_length > 1000, link


def test_swagger_ui_serves_only_what_the_page_needs(client: FlaskClient) -> None:
    # The package's demo page would load the Petstore from the internet.
    for name in ("index.html", "swagger-initializer.js", "..%2F__init__.py"):
        response = client.get(f"/api/docs/swagger-ui/{name}")
        assert response.status_code == 404
        assert response.json["code"] == 404


def _chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            # Offline, whatever network this machine has: only the service resolves.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=5000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )


@needs_chromium
@pytest.mark.live
def test_docs_render_the_operations_in_a_browser_offline(live_server: str, tmp_path: Path) -> None:
    paths = requests.get(f"{live_server}/api/openapi.json", timeout=5).json()["paths"]
    url = f"{live_server}/api/docs"

    dom = _chromium(url, tmp_path / "profile", "--dump-dom").stdout
    assert 'class="opblock ' in dom or "opblock-summary" in dom, dom[:2000]
    rendered = set(re.findall(r'data-path="([^"]+)"', dom))
    assert "/api/auth/login" in rendered
    assert rendered == set(paths), set(paths) ^ rendered

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "docs.png"
    screenshot.unlink(missing_ok=True)
    _chromium(
        url,
        tmp_path / "profile",
        "--window-size=1280,1800",
        "--hide-scrollbars",
        f"--screenshot={screenshot}",
    )
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one
