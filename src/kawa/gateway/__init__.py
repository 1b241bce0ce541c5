"""The SSH gateway: stock OpenSSH reaches a VPS through the host (``ssh -J``)."""
