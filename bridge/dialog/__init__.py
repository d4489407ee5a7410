"""Dialog engines: what the agent says. One interface, several engines chosen per agent."""
