"""drivers layer assets."""
