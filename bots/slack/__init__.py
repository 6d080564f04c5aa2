"""The Slack adapter: Slack events in, core calls, Slack messages and files out."""
