"""Pure decision code: standard library only, no I/O, no clock, no randomness."""
