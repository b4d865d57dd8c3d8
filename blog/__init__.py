"""Package data (installed as ramble2post.blog); read through ramble2post.config."""
