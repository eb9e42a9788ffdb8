"""Job lists: read, parse and validate rows into Jobs."""
