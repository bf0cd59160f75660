"""The partner HTTP API (aiohttp)."""
