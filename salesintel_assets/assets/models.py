"""models layer assets."""
