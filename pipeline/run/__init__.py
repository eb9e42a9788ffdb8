"""The run: plan each job, send it through rate-limited workers, retry, wait for images."""
