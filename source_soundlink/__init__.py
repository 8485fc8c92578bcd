"""Airbyte source connector for Soundlink campaign engagement exports."""
