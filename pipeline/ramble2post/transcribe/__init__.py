"""Stage 1, audio -> Transcript: decoding audio, Whisper models, the sequential and batched engines."""
