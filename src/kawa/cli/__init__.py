"""The ``kawa`` command line."""
