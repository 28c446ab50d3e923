"""The browser example (examples/browser) as `dcgan-serve --browser DIR` serves it at /browser/.

Every file is read once, at start, into memory, from a fixed list of names: a request picks one of those names
and nothing else, so no request reaches the file system. The page's model is the rgba8 file of the model the
server itself samples with, so the page and /sprite/SEED.png draw the same creatures.
"""

from __future__ import annotations

from pathlib import Path

ORT_DIST = "node_modules/onnxruntime-web/dist"
PAGE_FILES = ("index.html", "latent.js", "sprites.js")
ORT_FILES = (f"{ORT_DIST}/ort.wasm.bundle.min.mjs", f"{ORT_DIST}/ort-wasm-simd-threaded.wasm")
MODEL_FILE = "generator-rgba8.onnx"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
}


class PageError(ValueError):
    """The browser folder or its model is not there; the message says what to do."""


def load_page(folder: Path, model: Path) -> dict[str, tuple[str, bytes]]:
    """{name under /browser/: (content type, bytes)} for the page in `folder` and the rgba8 file beside `model`."""
    if not (folder / "index.html").is_file():
        raise PageError(f"{folder} has no index.html; point --browser at examples/browser")
    if not (folder / ORT_FILES[0]).is_file():
        raise PageError(f"{folder} lacks onnxruntime-web; run `npm ci` in {folder} first")
    rgba8 = model if model.name == MODEL_FILE else model.with_name(MODEL_FILE)
    if not rgba8.is_file():
        raise PageError(f"the page draws with {MODEL_FILE}, and {model.parent} has none; export with dcgan-export")
    files = {name: folder / name for name in PAGE_FILES + ORT_FILES} | {MODEL_FILE: rgba8}
    missing = [name for name, path in files.items() if not path.is_file()]
    if missing:
        raise PageError(f"{folder} lacks {', '.join(missing)}")
    return {name: (TYPES[path.suffix], path.read_bytes()) for name, path in files.items()}
