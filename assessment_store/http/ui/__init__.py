"""The operator dashboard at ``/ui``: server-rendered pages, one small script, live
updates by server-sent events. Every asset ships in this package (no CDN)."""
