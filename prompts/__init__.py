"""Package data (installed as ramble2post.prompts); read through ramble2post.config."""
