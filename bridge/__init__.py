"""The core of voicebridge: settings, the Redis store, sessions, routing and the SIP user agent."""
