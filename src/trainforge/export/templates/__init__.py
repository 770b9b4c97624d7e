"""Files copied verbatim into export bundles (``inference.py``)."""
