"""CLAIMED components: deploy."""
