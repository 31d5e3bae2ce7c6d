"""textclf: fine-tune a pretrained transformer encoder into a text classifier or regressor, and use it."""

__version__ = "0.1.0"
