"""The imgcdn edge: aiohttp server for /img, /raw (and avatars) through memory + disk caches."""
