"""feeds: publish a bilingual daily digest of ML paper notes as feeds, newsletters and a site."""

__version__ = "0.1.0"
