"""The Discord adapter: slash commands, mentions, threads and DMs on the shared core."""
