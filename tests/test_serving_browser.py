"""The demo page in headless Chromium (Debian's ``chromium``, driven by Playwright): type a review, click, read the
label off the page. ``TEXTCLF_SCREENSHOT=path.png`` keeps the screenshot (docs/serve-demo.png was made so)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_serving_process import free_port, start, wait_healthy

from textclf.inference.predictor import Predictor

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REVIEW = "A gripping, beautifully acted film: I loved every minute of it."


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.slow  # multi-process or trains several runs: CI runs it, -m 'not slow' skips it
def test_the_demo_page_classifies_a_typed_review(classifier_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    checkpoint = Path(os.environ.get("TEXTCLF_DEMO_CHECKPOINT") or classifier_dir)
    expected = Predictor.from_pretrained(checkpoint).predict(REVIEW)["label"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(checkpoint, port)
    try:
        wait_healthy(url, process)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 900, "height": 640})
            page.goto(url)
            # selector waits, not wait_for_function: the page's CSP (no eval) refuses string-evaluated JavaScript
            page.fill("#text", REVIEW)
            page.click("#predict")
            page.wait_for_selector("#verdict strong")
            verdict = page.text_content("#verdict")
            bars = page.locator("#results .pred").count()
            latency = page.text_content("#latency")
            shot = Path(os.environ.get("TEXTCLF_SCREENSHOT") or tmp_path / "demo.png")
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        process.terminate()
        process.wait(30)
    assert f"Prediction: {expected}" in verdict
    assert bars == len(Predictor.from_pretrained(checkpoint).label_names)  # a score bar per label
    assert "ms" in latency
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
