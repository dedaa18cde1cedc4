"""cloud_controller."""
