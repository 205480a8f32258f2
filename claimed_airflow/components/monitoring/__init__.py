"""CLAIMED components: monitoring."""
