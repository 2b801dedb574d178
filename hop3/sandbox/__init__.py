"""Local test hosts: Debian 12 under systemd-nspawn, each in its own network
namespace on a bridge with NAT (see docs/sandbox.md)."""

from .hosts import SandboxHost, down, host_names, reboot, status, up

__all__ = ["SandboxHost", "down", "host_names", "reboot", "status", "up"]
