"""The report: one self-contained HTML file, rendered from templates, and its figures."""
