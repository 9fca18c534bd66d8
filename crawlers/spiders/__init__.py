"""Spiders fetch pages and follow links; extractors read them; pipelines hand items to the inbox."""
