"""The runner's HTTP routes (thin, over the runner service and its executor)."""
