"""The read-only web dashboard of reports and of the health of a deployment (issue #14)."""
