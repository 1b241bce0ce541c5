"""The runner: registers with the host, executes tasks, reports what it sees."""
