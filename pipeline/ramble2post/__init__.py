"""ramble2post: a spoken ramble in, a three-layer blog post draft out."""

__version__ = "0.1.0"
