"""Hop3: a self-hosted platform-as-a-service whose engine is Ansible."""

__version__ = "0.1.0"
