"""One module per upstream; each turns its API into metric families and per-account facts."""
