"""clsp-search: find voices by describing them or by example.

The library: the CLSP model, audio decoding, collections on disk, search, and the style corpus.
"""

__version__ = "0.1.0"
