"""The demo: a generated month of Quy Nhơn's traffic, a stand-in for the province,
and an example of the province's reader."""
