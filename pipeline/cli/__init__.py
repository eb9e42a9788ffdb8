"""Command line: the click group, its lazily loaded commands and shared options."""
