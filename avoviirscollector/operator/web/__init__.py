"""The status page and its history: ``viirscollector recorder`` and ``viirscollector web``.

- history_rules: pure rules (passes, gaps, granule completeness, delay buckets);
- history_store: the SQLite history under state/ (WAL), trimmed and bounded;
- recorder: the program that fills it, off the pipeline's path;
- charts, page: server-side SVG and the HTML page (pure);
- views: what the page and the JSON API show, read from the history and supervisord;
- metrics: the Prometheus exposition; server: the read-only HTTP server.
"""
