"""Submissions: the CSV format and its validation, blending runs (`make ensemble`), scoring against
the post-competition labels (`make score`), and tagging any audio file from a run (`make predict`)."""
