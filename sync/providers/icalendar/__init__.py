"""The iCalendar format (RFC 5545), shared by the CalDAV and ICS adapters: `normalize` turns a
resource into events, `write` merges a desired state into a resource's text."""
