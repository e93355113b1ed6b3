"""The pages' own files (stylesheet, script, icon), read once at start-up and served with a
content hash in their URL, so a browser may cache them for good and still gets a new release's
files at once."""

import hashlib
from dataclasses import dataclass
from importlib import resources

TYPES = {
    "pages.css": "text/css",
    "pages.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    digest: str


@dataclass(frozen=True)
class Assets:
    files: dict[str, Asset]

    @classmethod
    def load(cls) -> "Assets":
        folder = resources.files("operations.pages") / "static"
        files = {}
        for name, content_type in TYPES.items():
            body = (folder / name).read_bytes()
            files[name] = Asset(body, content_type, hashlib.sha256(body).hexdigest()[:16])
        return cls(files)

    def url(self, name: str) -> str:
        return f"/pages/static/{name}?v={self.files[name].digest}"
