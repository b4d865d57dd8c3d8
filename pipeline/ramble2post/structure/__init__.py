"""Stage 2, Transcript -> Post: cleaning, role selection, the LLM, verification, titles."""
