"""What a run tells people: status, completion reports, the summary, live progress."""
