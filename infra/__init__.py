"""The bottom layer: settings, the servers the data lives on (embedded or external), and
process-level tuning. It imports nothing of ours above it."""
