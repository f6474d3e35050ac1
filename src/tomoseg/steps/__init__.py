"""One module per pipeline stage: pure functions on arrays, no files."""
