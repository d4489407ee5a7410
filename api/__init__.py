"""The REST + webhook surface of voicebridge (aiohttp)."""
