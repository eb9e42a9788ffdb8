"""The journal: write-ahead records on disk, the lock, and the fold into a ledger."""
