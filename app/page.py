"""The editor page at `/`: one self-contained HTML file (`static/editor.html`), served with a
Content-Security-Policy that lets it run its own inline script and style, talk to this origin
(HTTP and WebSocket) and nothing else."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

PAGE = files("app").joinpath("static/editor.html").read_bytes()

# A Host header that could carry anything but a host and port stays out of the header.
_PLAIN_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def inline_hashes(page: bytes, tag: str) -> str:
    """CSP sources allowing exactly the page's inline `<tag>` blocks (those without
    attributes: a `<script type="text/x-sample">` is data, never run), by their SHA-256."""
    name = tag.encode()
    blocks = re.findall(b"<" + name + b">(.*?)</" + name + b">", page, re.DOTALL)
    if not blocks:
        raise ValueError(f"the editor page has no inline <{tag}>")
    digests = (base64.b64encode(hashlib.sha256(block).digest()).decode() for block in blocks)
    return " ".join(f"'sha256-{digest}'" for digest in digests)


_POLICY = (
    "default-src 'none'; "
    f"script-src {inline_hashes(PAGE, 'script')}; "
    f"style-src {inline_hashes(PAGE, 'style')}; "
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "connect-src 'self'"
)
_ETAG = f'"{hashlib.sha256(PAGE).hexdigest()[:20]}"'


def content_security_policy(host: str) -> str:
    """The page's policy. CSP3's 'self' covers same-origin ws: and wss: (Chromium, Firefox);
    the explicit ones are for browsers that predate that rule."""
    if not _PLAIN_HOST.fullmatch(host):
        return _POLICY
    return f"{_POLICY} ws://{host} wss://{host}"


async def editor(request: Request) -> Response:
    headers = {
        "Content-Security-Policy": content_security_policy(request.headers.get("host", "")),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # Revalidated on every load, so a new deployment's page is seen at once; 304 if same.
        "Cache-Control": "no-cache",
        "ETag": _ETAG,
    }
    if request.headers.get("if-none-match") == _ETAG:
        return Response(status_code=304, headers=headers)
    return HTMLResponse(PAGE, headers=headers)


routes = [Route("/", editor)]
