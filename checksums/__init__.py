"""Checksum tables (.tsv) of the archives the builder knows."""
