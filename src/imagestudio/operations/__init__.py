"""Operating a studio: backup and restore, exports, cleanup."""
