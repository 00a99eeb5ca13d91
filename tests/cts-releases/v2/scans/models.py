"""One recorded package scan."""
from django.db import models


class Scan(models.Model):
    package = models.CharField(max_length=200)
    # Who recorded it: "beat" (the scheduled poll), "migration", or anything else.
    source = models.CharField(max_length=20)
    host = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)
    # Added by release v2: nullable, so v1's code (still serving while v2 is built and
    # migrated) keeps inserting rows.
    severity = models.CharField(max_length=20, null=True, blank=True)

    def __str__(self):
        return f"{self.package} ({self.source} on {self.host})"
