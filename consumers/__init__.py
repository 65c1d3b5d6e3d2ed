"""What reads the event log after it is written: reports, interconnection to the province,
audits. One sub-package per job."""
