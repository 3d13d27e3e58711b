"""HubSpot (CRM v3) as a CRM source: the official ``hubspot-api-client`` for
transport, authentication and retries (urllib3 ``Retry``), and plain
functions that turn HubSpot's objects into the export format.

``api`` talks to HubSpot, ``records`` maps its JSON to frames, ``pull``
walks the search windows and assembles one consistent pull."""
