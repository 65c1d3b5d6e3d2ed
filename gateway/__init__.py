"""The write side: submissions and the province's messages decoded, judged by the contract's
rules and appended to the event log once."""
