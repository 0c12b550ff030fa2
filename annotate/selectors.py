"""Reads of the annotate app. Who may read what is decided in annotate.access, not here."""
