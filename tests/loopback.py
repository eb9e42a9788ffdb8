"""Keep every credentials look-up a test makes on this machine.

The default chain ends at the ECS metadata service (100.100.100.200) and the public STS hosts. Tests,
.ci/run, the soak and the bench scripts turn the metadata source off and point STS at a loopback port
where nothing listens (refused at once), so a test that finds no credentials fails fast instead of
waiting on an address off this machine. A test that serves its own fakes sets
ENS_MIGRATE_ECS_METADATA_ENDPOINT / ALIBABA_CLOUD_STS_ENDPOINT (and clears the switch) itself.
"""

from __future__ import annotations

DEAD_LOOPBACK = "http://127.0.0.1:9"
"""The discard port: nothing listens there, so a connection is refused at once."""

LOOPBACK_GUARD: dict[str, str] = {
    "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    "ALIBABA_CLOUD_STS_ENDPOINT": DEAD_LOOPBACK,
    "ENS_MIGRATE_ECS_METADATA_ENDPOINT": DEAD_LOOPBACK,
}

LEAKY_SOURCES: tuple[str, ...] = (
    "ALIBABA_CLOUD_CREDENTIALS_URI", "ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE", "ALIBABA_CLOUD_ROLE_SESSION_NAME", "ALIBABA_CLOUD_ECS_METADATA",
    "ALIBABA_CLOUD_STS_REGION", "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED",
)
"""Variables from the developer's shell that would pick a source that leaves the machine."""
