"""Several bridge nodes on one Redis: the plan of a box\x27s nodes and their supervisor."""
