"""metrics layer assets."""
