"""CLAIMED components: predict."""
