"""Reports level: self-contained HTML pages that make data, features and model assumptions visible.

Modules render from frames passed in (no store reads, no network); writing a file is a separate, atomic step.
"""
