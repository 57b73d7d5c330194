"""One function per command: wires spec -> data -> core -> artifacts. No printing; progress goes
through an `events` callable that the CLI renders."""
