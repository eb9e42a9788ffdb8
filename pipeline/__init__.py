"""ens-migrate: import VM image catalogs from OSS into Alibaba Cloud ENS, exactly once."""

__version__ = "0.1.0"
