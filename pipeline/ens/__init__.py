"""The ENS API edge: signed requests, credentials, endpoints, error classes."""
