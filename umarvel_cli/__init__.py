"""umarvel: the U-MARVEL recipe as an installable, resumable toolkit."""

__version__ = "0.1.0"
