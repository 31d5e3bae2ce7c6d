"""The serving stage: ``textclf serve``, a checkpoint behind an HTTP API with dynamic batching and a demo page.

- :mod:`~textclf.serving.app`: :func:`create_app`, the FastAPI app (TEI's ``/predict``, ``/health``, ``/info``,
  ``/metrics``, the demo page at ``/``);
- :mod:`~textclf.serving.batching`: :class:`DynamicBatcher`, requests merged into few forward passes on one worker
  thread;
- :mod:`~textclf.serving.protocol`: the request and response shapes (TEI's) and error kinds;
- :mod:`~textclf.serving.settings`: :class:`ServeSettings`, the limits and their defaults;
- :mod:`~textclf.serving.metrics`: the Prometheus metrics.

It imports inference, never training: a checkpoint directory is all it needs. The names below load on first use,
so that the CLI can read :class:`ServeSettings`'s defaults without importing torch and FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

from textclf.serving.settings import API_KEY_ENV, ServeSettings

_LAZY = {"create_app": "textclf.serving.app", "serve_precision": "textclf.serving.app",
         "DynamicBatcher": "textclf.serving.batching"}

__all__ = ["API_KEY_ENV", "DynamicBatcher", "ServeSettings", "create_app", "serve_precision"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'textclf.serving' has no attribute {name!r}")
