"""Tools for looking inside a loaded program (`wengert inspect`, ...)."""
