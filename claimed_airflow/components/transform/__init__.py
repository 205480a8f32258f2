"""CLAIMED components: transform."""
