"""CLAIMED components: analyze."""
