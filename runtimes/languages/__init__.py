"""One module per language, each defining `RUNTIME` (see `runtimes/runtime.py`)."""
