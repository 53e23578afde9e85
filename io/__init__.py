"""File formats: EXR (OpenEXR), stills (OpenImageIO), movies (PyAV), sequences (fileseq)."""
