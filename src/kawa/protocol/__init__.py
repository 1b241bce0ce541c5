"""Wire models shared by host, runner and client: the one place a field is defined."""
