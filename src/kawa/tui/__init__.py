"""Text user interfaces (Textual): ``kawa connect ID --ide``."""
