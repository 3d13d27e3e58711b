"""The people-facing web service (``salesintel serve``): Slack interactivity,
the REST API and the leader dashboard, all reading the serving snapshot and
writing only to small SQLite files (tokens, audit log, feedback inbox)."""
