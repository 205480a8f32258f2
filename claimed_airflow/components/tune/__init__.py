"""CLAIMED components: tune."""
