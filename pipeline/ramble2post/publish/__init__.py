"""Stage 4, Post + experiment Results -> Draft: rendering, the blog repo, git plumbing, reruns."""
