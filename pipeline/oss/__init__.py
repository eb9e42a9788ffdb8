"""The OSS stage: the client (SDK V2, V4 signatures), oss:// sources, listing and source checks."""
