"""Programs that run inside tasks, where kawa is not installed.

Each module here is a single file that uses only the Python standard library and
imports nothing of kawa, so the runner can put it into any container or native task.
"""
