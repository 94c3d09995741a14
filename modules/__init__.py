"""Cloud and edge modules built on the beehive framework."""
