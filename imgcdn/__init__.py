"""imgcdn: a caching image-CDN edge and a Gravatar-style avatar origin."""

__version__ = "0.1.0"
