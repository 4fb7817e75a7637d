"""Helpers of the repository that are not part of the sweep package (the documentation site's MkDocs hooks)."""
