"""seqrec: sequential recommendation experiments from one validated YAML spec."""

__version__ = "0.2.0"
