"""Package data (installed as ramble2post.samples); read through ramble2post.config."""
