"""The composition root: the CLI, the wiring of every service and the generators. It imports
every layer; nothing imports it."""
