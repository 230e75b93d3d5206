"""The storage drivers shipped with sm and the small helpers they share."""
