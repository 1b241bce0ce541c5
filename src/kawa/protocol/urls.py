"""Where the host's API lives (no imports: the CLI's quick paths read it too)."""

API_PREFIX = "/api/v1"
