"""Renderers: model objects in, ``str`` out (text with rich, JSON, later Markdown/HTML)."""
