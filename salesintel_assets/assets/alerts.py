"""alerts layer assets."""
