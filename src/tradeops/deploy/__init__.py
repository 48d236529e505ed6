"""Deployment level: scoring (pure), serving, prediction log, monitoring, rules and actions."""
