"""Maintainers' tools, apart from the teaching code: the static site, student copies, the model
card and the timing records. Learners never need to import these."""
